"""Checking that a delivery comes from Seam: its Svix signature, with Svix's own verifier.

Seam sends webhooks through Svix. Each delivery carries ``svix-id``, ``svix-timestamp`` and
``svix-signature`` (or the same as ``webhook-*``); the signature is an HMAC-SHA256, with the
endpoint's ``whsec_`` secret, of the id, the timestamp and the raw body, and Svix's verifier
refuses a timestamp more than five minutes from our clock (so a captured delivery can't be
played again later). The check is Svix's (``svix.webhooks.Webhook``), not a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

# The delivery's id: Svix's verifier reads ``svix-id``, and ``webhook-id`` when there is none.
ID_HEADERS = ("svix-id", "webhook-id")


class Refused(Exception):
    """A delivery the receiver won't take: ``status`` is its HTTP answer (401: not signed by
    Seam's secret, or too old or new; 400: signed, but not a Seam event), ``reason`` what to
    log. Not a ``PipelineError``: it stops one delivery, never the receiver."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id (the same on each of Seam's retries) and its event."""

    delivery_id: str
    event: dict[str, Any]


class Verifier:
    """Checks deliveries against the webhook's secret (held by Svix's verifier only)."""

    def __init__(self, secret: SecretStr) -> None:
        # Imported here: the svix package brings its whole API client (a third of a second),
        # which no other command needs.
        from svix.webhooks import Webhook

        self._webhook = Webhook(secret.get_secret_value())

    def __repr__(self) -> str:
        return "Verifier(secret='**********')"

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """The delivery of ``body`` with ``headers``, once its signature and timestamp check
        out and its body is a JSON object. Raises Refused (401 or 400) otherwise."""
        from svix.webhooks import WebhookVerificationError

        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            self._webhook.verify(body, lowered)
        except WebhookVerificationError as exc:
            raise Refused(401, f"signature refused: {exc}") from exc
        except ValueError as exc:
            # A body that isn't UTF-8, or a signature header Svix can't even split or decode.
            raise Refused(401, f"signature refused: malformed ({type(exc).__name__})") from exc
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise Refused(400, f"signed, but the body isn't JSON: {exc}") from exc
        except RecursionError as exc:
            # Arrays or objects nested deeper than Python's parser goes: no Seam event is.
            too_deep = "signed, but its JSON is nested too deep to be a Seam event"
            raise Refused(400, too_deep) from exc
        if not isinstance(event, dict):
            raise Refused(400, "signed, but the body isn't a JSON object")
        return Delivery(_signed_id(lowered), event)


def _signed_id(headers: Mapping[str, str]) -> str:
    """The delivery id that the signature covered, read as Svix's verifier reads it."""
    return next(headers[name] for name in ID_HEADERS if name in headers)
