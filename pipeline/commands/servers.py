"""``sandbox`` and ``webhooks``: the servers that run until stopped."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.commands.options import WEBHOOK_HOST, WEBHOOK_PORT, SandboxOptions
from pipeline.commands.runs import require_ledger
from pipeline.common.errors import UsageError
from pipeline.common.listening import listen
from pipeline.common.rates import parse_rate
from pipeline.common.settings import load_webhook_secret
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.sandbox import build_sandbox, serve
from pipeline.webhooks import Verifier, WebhookReceiver, address, bind
from pipeline.webhooks import serve as serve_receiver


def serve_sandbox(options: SandboxOptions, *, on_ready: Callable[[int], None]) -> None:
    """Serve the sandbox in the foreground until Ctrl-C; ``on_ready`` gets its door count
    first. Raises UsageError (exit 2) for bad options or a device file it can't use.

    Not async: uvicorn runs its own event loop and owns the signals.
    """
    door_rate = parse_rate(options.door_rate)
    faults = options.faults()
    webhooks = options.webhooks()
    try:
        state, app = build_sandbox(
            options.devices,
            door_rate=door_rate,
            global_rate=options.global_rate,
            faults=faults,
            seed=options.seed,
            webhooks=webhooks,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"sandbox device file {options.devices} can't be used: {exc}") from exc
    # The port is tried before the banner says the sandbox serves: one line if it can't be had.
    listen(options.host, options.port, server="the Seam sandbox").close()
    on_ready(len(state.slots))
    serve(app, options.host, options.port)


async def serve_webhooks(
    *,
    host: str = WEBHOOK_HOST,
    port: int = WEBHOOK_PORT,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    on_ready: Callable[[str], None],
) -> None:
    """Receive Seam's webhooks on ``host``:``port`` (any path) into the ledger until SIGINT or
    SIGTERM; ``on_ready`` gets the receiver's URL once it listens.

    Raises, before listening, ConfigError (exit 2) when SEAM_WEBHOOK_SECRET is missing or
    malformed, UsageError (exit 2) when the ledger doesn't exist or the port can't be had,
    LedgerError (exit 3) when a PostgreSQL ledger's server can't be reached, and as
    ``Ledger.open`` does for a ledger that can't be used. Takes no run lock: apply and
    status may run on the same ledger meanwhile.
    """
    verifier = Verifier(load_webhook_secret())
    await require_ledger(ledger_path, "webhooks")
    async with await Ledger.open(ledger_path):  # a damaged ledger is one line, not a server error
        pass
    listening = bind(host, port)
    with listening:
        on_ready(address(listening))
        await serve_receiver(WebhookReceiver(ledger_path, verifier), listening)
