"""Seam: the stage that talks to the Seam API, and the only code that imports httpx.

Takes credentials (``pipeline.common.settings``) and request bodies; gives Seam's objects as models
(``models``: devices, access codes), its errors as SeamError with the ``seam-request-id``
(``answers``), and every request as an ``Exchange`` for the ledger. ``client`` sends: reads
retried, creates sent once, every request and listing bounded in time.
"""
