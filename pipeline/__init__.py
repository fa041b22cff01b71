"""Provision dormakaba Oracode offline access codes through the Seam API, exactly once."""

__version__ = "0.1.0"
