"""Settling what exists on a door, so that a create is only sent for a code that isn't there.

Three kinds of jobs find out, each a list of the door's codes:
    look    before a door's first create in a run: planned codes found on the door are adopted
            (``found_on_door``) and withdrawn; codes an earlier run left ``sending`` are adopted,
            known not made once their settle time has passed, or looked for again when it has
    verify  a create whose outcome was unknown: a few seconds after its answer (``LOOK_SOON``)
            its door is looked at once for every such code of the door, and the codes found
            are adopted; a code still absent is looked for again once it has settled
            (``settle_after`` since its send), and only then, if it still isn't there, is the
            create sent again
    check   a budgeted door whose look has gone stale, counted again (``BudgetGuard``) just
            before its first create: the codes its budget can no longer take fail with
            ``budget_exhausted`` and are withdrawn; planned codes found there are adopted
A door that can't be looked at takes no create this run (``door_not_looked_at``). Every list a
job gets is also read for duplicates (one of our tags on more than one code of the door): they
are recorded in the ledger and said (``apply.duplicates``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from pipeline.apply.duplicates import duplicated_tags
from pipeline.apply.policy import (
    KEY_REFUSED_STATUS,
    SENT_AT_SLACK,
    CreatePolicy,
    ProgressWatch,
    key_refused,
)
from pipeline.apply.scheduler import Job, Outcome
from pipeline.budget.usage import BudgetGuard, Recount
from pipeline.catalog.looking import find_tags
from pipeline.common.errors import SeamError, SeamUnavailableError
from pipeline.common.reasons import (
    ADOPTED,
    BUDGET_EXHAUSTED,
    DOOR_NOT_LOOKED_AT,
    FOUND_ON_DOOR,
    NOT_FOUND,
)
from pipeline.ledger.store import Ledger, LedgerCode
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode

log = logging.getLogger(__name__)
# A read that still met these after the client's retries is tried again later: no answer yet.
RETRY_READ_STATUS = frozenset({429})
# A create whose answer was lost is looked for on its door this soon after (seconds): most lost
# answers are of codes already made (a connection dropped, a gateway's 5xx after the backend
# answered), which are then adopted at once instead of after the whole settle time.
LOOK_SOON = 2.0


@dataclass(frozen=True)
class SendContext:
    """What the creator and the settler of one run share: the client and the ledger, the run,
    the create bodies by tag, the policy and its progress watch, where progress is reported,
    the doors closed for this run (door → reason and message), and the attempts it acts on."""

    client: SeamClient
    ledger: Ledger
    run_id: str
    bodies: Mapping[str, dict[str, Any]]
    policy: CreatePolicy
    progress: ProgressWatch
    on_progress: Callable[[str], None]
    closed_doors: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The attempt of each code's last ``sending`` this run acts on (its own sends, and codes an
    # earlier run left sending): a move out of that ``sending`` names it, so that it never puts
    # back another process's later send (``Ledger.mark_pending``).
    attempts: dict[str, int] = field(default_factory=dict)


class CodeSettler:
    """Runs the ``look``, ``verify`` and ``check`` jobs of a run (``CodeCreator`` hands them here).

    ``bodies`` maps a tag to its create body; a tag without one (a ``sending`` code from an
    earlier run that isn't in this run's input) is only looked for, never created. ``look``
    jobs find which codes exist on a door (from ``prelisted`` when the door was listed already
    this run, for its budget): ``planned`` (door → its planned tags not yet created) found
    there are adopted, and ``sending`` (door → codes an earlier run left ``sending``) are
    adopted or settled. ``guard`` counts budgeted doors again for their ``check`` jobs when
    their look has gone stale. A door that can't be looked at is added to ``closed_doors``
    (shared with the creator: door → the reason and message for its creates not sent);
    ``found_on_door`` holds the tags adopted before anything was sent for them.
    """

    def __init__(
        self,
        run: SendContext,
        *,
        guard: BudgetGuard | None = None,
        planned: Mapping[str, Collection[str]] | None = None,
        sending: Mapping[str, Sequence[LedgerCode]] | None = None,
        prelisted: Mapping[str, list[AccessCode]] | None = None,
    ) -> None:
        self._run = run
        self._guard = guard
        self._planned = planned or {}
        self._sending = sending or {}
        self._prelisted = dict(prelisted or {})
        self.closed_doors = run.closed_doors
        self.found_on_door: set[str] = set()
        # Per door, the codes whose answer was lost and the send time of each, waiting for the
        # door's next look soon; and the tag whose ``verify`` job makes that look.
        self._unknown: dict[str, dict[str, float]] = {}
        self._looks_soon: dict[str, str] = {}
        self.duplicates: dict[str, list[AccessCode]] = {}  # found this run, by tag

    def _read(self, device_id: str, codes: Sequence[AccessCode], *, is_full: bool) -> None:
        """What a list of the door's codes says beyond the job's own question: duplicates, and
        (``is_full``: every code of the door, not a search) that the door was looked at."""
        if is_full:
            self._run.ledger.note_door_looks([device_id])
        found = duplicated_tags(codes, device_id)
        if found:
            self.duplicates.update(found)
            self._run.ledger.note_duplicates(self._run.run_id, found)

    def look_soon(self, device_id: str, tag: str, sent: float) -> Job | None:
        """A create's answer was lost: the code joins its door's next look soon. Returns the
        ``verify`` job that makes that look (to run ``LOOK_SOON`` seconds from now) when the
        door had none waiting, else None (the look already waiting covers it too)."""
        self._unknown.setdefault(device_id, {})[tag] = sent
        if device_id in self._looks_soon:
            return None
        self._looks_soon[device_id] = tag
        return Job(device_id, tag, "verify")

    async def look(self, job: Job) -> Outcome:
        """Before anything is sent to a door: which of our codes exist on it. Planned codes found
        there are adopted and withdrawn; codes an earlier run left ``sending`` are adopted, or
        sent again once settled, or looked for again when they settle."""
        device_id = job.device_id
        left = {code.idempotency_tag: code for code in self._sending.get(device_id, ())}
        codes = self._prelisted.pop(device_id, None)
        # A code left sending is settled only by a list taken after its settle time: the
        # list taken for the budget may be older, so such a door is listed again here.
        listed_at = dt.datetime.now(dt.UTC)
        if codes is None or left:
            try:
                codes = await self._run.client.list_access_codes(device_id)
            except SeamError as exc:
                if isinstance(exc, SeamUnavailableError) or exc.status in RETRY_READ_STATUS:
                    return self._read_again(job, exc)
                if exc.status in KEY_REFUSED_STATUS:
                    raise key_refused(exc) from exc
                # Without a look, a create could duplicate a code already there: none is sent.
                why = f"could not look at door {device_id} before creating: {exc.one_line()}"
                log.error("door not looked at: its creates are not sent", extra={"error": why})
                self.closed_doors[device_id] = (DOOR_NOT_LOOKED_AT, f"not sent: {why}")
                return Outcome(close_door=True)
            self._run.progress.progressed()
        self._read(device_id, codes, is_full=True)
        wanted = [*self._planned.get(device_id, ()), *left]
        found = find_tags(codes, dict.fromkeys(wanted, device_id))
        for tag, code in found.items():
            # A code an earlier run sent is that send's outcome; any other was made by a run
            # whose ledger this isn't (new, lost, copied).
            how = ADOPTED if tag in left else FOUND_ON_DOOR
            self._run.ledger.mark_created(tag, self._run.run_id, code, None, how=how)
            if how == FOUND_ON_DOOR:
                self.found_on_door.add(tag)
            self._run.on_progress("created")
        later = self._settle_left(
            (code for tag, code in left.items() if tag not in found), listed_at
        )
        return Outcome(withdraw=frozenset(found), later=later)

    def _settle_left(
        self, codes: Iterable[LedgerCode], listed_at: dt.datetime
    ) -> tuple[tuple[float, Job], ...]:
        """Codes an earlier run left ``sending`` that a list begun at ``listed_at`` didn't
        find: one whose settle time had passed since its send when the list began is known not
        made (``pending``, and created again when planned); one still settling is looked for
        again when it has; one that settles later than this run may wait is left ``sending``
        for the next run."""
        now = listed_at
        later = []
        for code in codes:
            tag = code.idempotency_tag
            sent_at = dt.datetime.fromisoformat(code.sent_at) if code.sent_at else None
            waited = (now - sent_at).total_seconds() if sent_at else self._run.policy.settle_after
            remaining = self._run.policy.settle_after + SENT_AT_SLACK - waited
            self._run.attempts[tag] = code.attempts
            if remaining <= 0:
                self._run.ledger.mark_pending(
                    tag,
                    self._run.run_id,
                    NOT_FOUND,
                    "left sending, settled, and not on the door",
                    attempt=code.attempts,
                    looked_for=tag in self._run.bodies,
                )
                if tag in self._run.bodies:
                    later.append((0.0, Job(code.device_id, tag, "create")))
            elif remaining <= self._run.progress.remaining():
                later.append((remaining, Job(code.device_id, tag, "verify")))
            # Otherwise it settles later than this run may wait: it stays `sending` for the next.
        return tuple(later)

    async def check(self, job: Job) -> Outcome:
        """Count a stale door again; withdraw the creates its budget can no longer take and
        adopt the planned codes already on it."""
        if self._guard is None or self._guard.is_fresh(job.device_id):
            return Outcome()
        try:
            recount = await self._guard.recheck(job.device_id)
        except SeamError as exc:
            if exc.status in KEY_REFUSED_STATUS:
                raise key_refused(exc) from exc
            if isinstance(exc, SeamUnavailableError):
                self._run.progress.stalled(exc)
            # The look's count stands; Seam's own no-space answer still stops a full door.
            log.warning(
                "could not count the door's codes again; going on with its first look's count",
                extra={"device_id": job.device_id, "error": exc.one_line()},
            )
            return Outcome()
        self._run.progress.progressed()
        # Only codes not yet created are adopted: the ledger's created ones keep their record.
        wanted = set(self._planned.get(job.device_id, ()))
        recount = Recount(
            over=recount.over,
            found={tag: code for tag, code in recount.found.items() if tag in wanted},
        )
        await self._settle_recount(job.device_id, recount)
        return Outcome(withdraw=frozenset(recount.over) | frozenset(recount.found))

    async def _settle_recount(self, device_id: str, recount: Recount) -> None:
        for tag, code in recount.found.items():
            self._run.ledger.mark_created(tag, self._run.run_id, code, None, how=FOUND_ON_DOOR)
            self.found_on_door.add(tag)
            self._run.on_progress("created")
        over = {tag: why for tag, why in recount.over.items() if tag not in recount.found}
        if over:
            await self._run.ledger.mark_failed_many(
                self._run.run_id, [(tag, BUDGET_EXHAUSTED, why) for tag, why in over.items()]
            )
            log.warning(
                "door's budget was used since it was looked at: codes withdrawn",
                extra={"device_id": device_id, "withdrawn": len(over)},
            )
            for _ in over:
                self._run.on_progress("failed")

    async def verify(self, job: Job) -> Outcome:
        """Look for codes whose create's outcome is unknown: the door's look soon (every such
        code of the door at once: adopted when there, else looked for again once settled), or
        a settled code's own look (adopted, or its create sent again if it isn't there)."""
        if self._looks_soon.get(job.device_id) == job.key:
            return await self._look_soon(job)
        tag = job.key
        try:
            codes = await self._run.client.list_access_codes(job.device_id, search=tag)
        except SeamError as exc:
            if isinstance(exc, SeamUnavailableError) or exc.status in RETRY_READ_STATUS:
                return self._read_again(job, exc)
            if exc.status in KEY_REFUSED_STATUS:
                raise key_refused(exc) from exc
            # The code stays `sending`: the next run looks again.
            log.error(
                "could not look for a code whose create had an unknown outcome",
                extra={"tag": tag, "device_id": job.device_id, "error": exc.one_line()},
            )
            return Outcome()
        self._read(job.device_id, codes, is_full=False)
        found = find_tags(codes, {tag: job.device_id})
        if tag in found:
            self._adopt(tag, found[tag])
            return Outcome()
        resend = tag in self._run.bodies
        self._run.ledger.mark_pending(
            tag,
            self._run.run_id,
            NOT_FOUND,
            "the create's answer was lost and no code was made"
            if resend
            else "not on the door and not in this run's input",
            attempt=self._run.attempts.get(tag),
            looked_for=resend,
        )
        return Outcome(again=Job(job.device_id, tag, "create")) if resend else Outcome()

    async def _look_soon(self, job: Job) -> Outcome:
        """One look at a door for every code of it whose answer was lost: those there are
        adopted; the others are looked for again once their settle time has passed since their
        send, or left ``sending`` for the next run when that is later than the run may wait."""
        device_id = job.device_id
        looked = dict(self._unknown.get(device_id, {}))
        # One code: Seam's search finds it; several: the door's whole list, once.
        search = next(iter(looked)) if len(looked) == 1 else None
        try:
            codes = await self._run.client.list_access_codes(device_id, search=search)
        except SeamError as exc:
            if isinstance(exc, SeamUnavailableError) or exc.status in RETRY_READ_STATUS:
                return self._read_again(job, exc)
            if exc.status in KEY_REFUSED_STATUS:
                raise key_refused(exc) from exc
            codes = None  # looked for once settled, each on its own, as without this look
        del self._looks_soon[device_id]
        # Codes whose answer was lost while this look was out get a look of their own soon.
        joined = {
            tag: sent for tag, sent in self._unknown.pop(device_id, {}).items() if tag not in looked
        }
        later = []
        for tag, sent in joined.items():
            if (again := self.look_soon(device_id, tag, sent)) is not None:
                later.append((LOOK_SOON, again))
        if codes is not None:
            self._read(device_id, codes, is_full=search is None)
        found = {} if codes is None else find_tags(codes, dict.fromkeys(looked, device_id))
        now = anyio.current_time()
        for tag, sent in looked.items():
            if tag in found:
                self._adopt(tag, found[tag])
                continue
            wait = max(0.0, sent + self._run.policy.settle_after - now)
            if wait > self._run.progress.remaining():
                log.warning(
                    "create outcome unknown and the code isn't on its door yet; it settles after"
                    " this run would give up, so the next run looks for it",
                    extra={"tag": tag, "device_id": device_id},
                )
                continue  # stays `sending`
            later.append((wait, Job(device_id, tag, "verify")))
        return Outcome(later=tuple(later))

    def _adopt(self, tag: str, code: AccessCode) -> None:
        """A code whose create's outcome was unknown is on its door: that create made it."""
        self._run.progress.progressed()
        self._run.ledger.mark_created(tag, self._run.run_id, code, None, how=ADOPTED)
        self._run.on_progress("created")

    def _read_again(self, job: Job, exc: SeamError) -> Outcome:
        """A look that got no usable answer: the same job again, after a backoff."""
        self._run.progress.stalled(exc)
        return Outcome(again=job, after=self._run.progress.retry_wait())
