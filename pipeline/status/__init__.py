"""Status: the ledger's codes refreshed from Seam, the door being the truth.

Takes the ledger and a Seam client; gives each code's state on its door (``refresh``: status,
what needs a person and since when) and, when the webhook receiver missed deliveries, the
events caught up from Seam's list (``catchup``).
"""
