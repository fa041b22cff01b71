"""Webhooks stage: Seam's events, as Seam posts them, kept in the ledger as they happen.

Takes the deliveries Seam (through Svix) posts to the receiver, on any path; gives each
``access_code.*`` event's change to the ledger's code with that ``access_code_id`` (its status,
its PIN, what needs a person) and keeps every event once (``seam_events``). ``verify`` checks
a delivery's signature with Svix's verifier, ``events`` says what each event type changes,
``app`` is the receiver (its answers, the ledger writes off the event loop), ``server`` serves
it with uvicorn, and ``guard`` is its defence facing the internet (a deadline per request, a
cap on connections, one line a minute when out of file descriptors). The rules that keep a
late, repeated or replayed event from moving a code back, and an event for another door or
without a real time from moving it at all, are the ledger's (``pipeline.ledger.events``).
"""

from pipeline.webhooks.app import WebhookReceiver, create_app
from pipeline.webhooks.server import DEFAULT_HOST, DEFAULT_PORT, address, bind, serve, serving
from pipeline.webhooks.verify import Verifier

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Verifier",
    "WebhookReceiver",
    "address",
    "bind",
    "create_app",
    "serve",
    "serving",
]
