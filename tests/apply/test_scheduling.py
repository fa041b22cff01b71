"""The scheduler on a virtual clock: per-door pacing, no head-of-line blocking, 429s, stops.

``send`` is a fake that records ``(anyio.current_time(), job)`` and answers what each test
chooses; minutes of Seam time take milliseconds (tests/virtual_time.py).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import anyio
import pytest

from pipeline.apply.pacing import GLOBAL_PACE_MARGIN, DoorPace, GlobalPace, LearntRate, backoff
from pipeline.apply.scheduler import PREPARE_LEAD, DoorScheduler, Job, Outcome
from pipeline.common.errors import RunStopped, UsageError
from pipeline.common.rates import Rate
from tests.virtual_time import virtual_backend

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


class Recorder:
    """A fake ``send``: records each call, then answers ``answer(job, calls so far)``."""

    def __init__(
        self,
        answer: Callable[[Job, int], Outcome] | None = None,
        *,
        delay: float | Callable[[Job], float] = 0.0,
        pace: GlobalPace | None = None,
    ) -> None:
        self.answer = answer or (lambda job, n: Outcome(counted=True))
        self.delay = delay
        self.pace = pace
        self.sent: list[tuple[float, Job]] = []
        self.called: list[tuple[float, Job]] = []  # when send was called (before the pace)
        self.inside = 0
        self.max_inside = 0

    async def __call__(self, job: Job) -> Outcome:
        self.called.append((anyio.current_time(), job))
        if self.pace is not None:
            await self.pace()
        now = anyio.current_time()
        self.sent.append((now, job))
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        try:
            delay = self.delay(job) if callable(self.delay) else self.delay
            if delay:
                await anyio.sleep(delay)
            return self.answer(job, len(self.sent))
        finally:
            self.inside -= 1

    def times(self, device_id: str) -> list[float]:
        return [at for at, job in self.sent if job.device_id == device_id]


def queue(scheduler: DoorScheduler, **jobs_per_door: int) -> None:
    for door, count in jobs_per_door.items():
        for n in range(count):
            scheduler.add(Job(door, f"{door}-{n}"))


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/60s", Rate(10, 60.0)),
        ("10/60", Rate(10, 60.0)),
        (" 5 / 2.5s ", Rate(5, 2.5)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_rate_parse_reads_count_per_seconds(text, rate):
    """COUNT/SECONDS (optional "s", spaces allowed) is a Rate; "off" means unknown."""
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["10", "0/60s", "10/0s", "abc", "10/60m", ""])
def test_rate_parse_refuses_what_is_not_a_rate(text):
    """A text that isn't a positive COUNT/SECONDS is a UsageError that says how to write one."""
    with pytest.raises(UsageError, match="COUNT/SECONDS") as caught:
        Rate.parse(text)
    assert "10/60s" in caught.value.one_line()


# Each row: the door's rate, its history as (event, time) pairs, blocked_until, "now",
# and when the next create may be sent.
@pytest.mark.parametrize(
    ("rate", "history", "blocked_until", "now", "ready"),
    [
        (Rate(2, 10), [], 0.0, 0.0, 0.0),
        (Rate(2, 10), [("start", 0)], 0.0, 0.0, 0.0),
        (Rate(2, 10), [("start", 0), ("start", 0)], 0.0, 3.0, math.inf),
        (Rate(2, 10), [("start", 0), ("finish", 1), ("start", 2)], 0.0, 3.0, 11.0),
        (Rate(2, 10), [("start", 0), ("finish", 1), ("start", 1), ("finish", 2)], 0.0, 5.0, 11.0),
        (Rate(2, 10), [("start", 0), ("finish", 1), ("start", 1), ("finish", 2)], 0.0, 11.0, 11.0),
        (Rate(2, 10), [("start", 0), ("finish", 1), ("start", 1), ("finish", 2)], 0.0, 30.0, 30.0),
        (Rate(2, 10), [("start", 0), ("uncounted", 1)], 0.0, 2.0, 2.0),
        (Rate(2, 10), [], 20.0, 5.0, 20.0),
        (Rate(2, 10), [("start", 0), ("finish", 1), ("start", 1), ("finish", 2)], 15.0, 5.0, 15.0),
        (None, [], 0.0, 4.0, 4.0),
        (None, [("start", 0)], 0.0, 4.0, math.inf),
        (None, [("start", 0), ("finish", 1)], 0.0, 4.0, 4.0),
        (None, [], 9.0, 4.0, 9.0),
    ],
)
def test_door_pace_ready_at(rate, history, blocked_until, now, ready):
    """A create holds a place from its start until one period after its answer."""
    pace = DoorPace(rate, LearntRate(), blocked_until=blocked_until)
    for event, at in history:
        if event == "start":
            pace.start(at)
        else:
            pace.finish(at, counted=event == "finish")
    assert pace.ready_at(now) == ready


def test_learnt_rate_is_shared_and_only_lowered():
    """Unconfigured doors learn a Rate from the first door 429 and share it; it never rises."""
    learnt = LearntRate()
    first, other = DoorPace(None, learnt), DoorPace(None, learnt)
    for at in (0.0, 1.0):
        first.start(at)
        first.finish(at, counted=True)
    first.start(2.0)
    first.finish(2.0, counted=False)
    first.rate_limited(2.0, retry_after=30.0)
    assert learnt.rate == other.rate == Rate(2, 32.0)
    assert other.ready_at(5.0) == 5.0  # only the door that got the 429 is paused
    learnt.learn(5, 10.0, sent_under=None)  # in flight before the limit was known: ignored
    assert learnt.rate == Rate(2, 32.0)
    learnt.learn(1, 40.0, sent_under=learnt.rate)  # sent under it and still refused: lower
    assert learnt.rate == Rate(1, 32.0)
    learnt.learn(1, 40.0, sent_under=learnt.rate)
    assert learnt.rate == Rate(1, 48.0)


@pytest.mark.parametrize("consecutive", [1, 2, 3, 6, 7, 8, 20])
def test_backoff_stays_between_half_cap_and_cap(consecutive):
    """backoff(n) is jittered within [cap/2, cap], cap = min(60, 2**(n-1))."""
    cap = min(60.0, 2.0 ** (consecutive - 1))
    waits = [backoff(consecutive) for _ in range(200)]
    assert all(cap / 2 <= wait <= cap for wait in waits)


async def test_one_door_never_sends_more_than_its_rate_in_any_window():
    """25 creates on one door at 10/60s: ≤ 10 answers in any 60 s, the last at ≥ 120 s."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=8)
    send = Recorder(lambda job, n: Outcome(counted=True, answered_at=anyio.current_time()))
    start = anyio.current_time()
    queue(scheduler, door=25)
    await scheduler.run(send)
    times = send.times("door")
    assert len(times) == 25
    assert max(sum(t <= other < t + 60 for other in times) for t in times) == 10
    assert times[-1] - start >= 120


async def test_a_busy_door_does_not_hold_up_the_others():
    """Door A's 30 jobs wait on A's rate; every other door's job goes before A's 11th."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=2)
    others = [f"door-{letter}" for letter in "BCDEFGHIJK"]
    start = anyio.current_time()
    queue(scheduler, A=30, **dict.fromkeys(others, 1))
    send = Recorder()
    await scheduler.run(send)
    order = [job.device_id for _, job in send.sent]
    eleventh_of_a = [n for n, door in enumerate(order) if door == "A"][10]
    assert all(order.index(door) < eleventh_of_a for door in others)
    assert all(send.times(door)[0] - start < 1 for door in others)


async def test_the_longest_backlog_goes_first():
    """With one slot, the first job sent is from the door with the most queued jobs."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=1)
    queue(scheduler, few=1, most=3, some=2)
    send = Recorder()
    await scheduler.run(send)
    assert send.sent[0][1].device_id == "most"
    assert len(send.sent) == 6


@pytest.mark.parametrize("concurrency", [1, 3, 5])
async def test_never_more_than_concurrency_jobs_in_send(concurrency):
    """However many doors are ready, at most ``concurrency`` jobs are inside send at once."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=concurrency)
    queue(scheduler, **{f"door-{n}": 3 for n in range(8)})
    send = Recorder(delay=1.0)
    await scheduler.run(send)
    assert len(send.sent) == 24
    assert send.max_inside == concurrency


async def test_a_door_429_pauses_only_that_door():
    """A door 429 with Retry-After 30 holds that door 30 s; the other doors keep sending."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=1)
    queue(scheduler, A=5, B=5, C=5)

    def answer(job: Job, n: int) -> Outcome:
        if n == 1:
            return Outcome(again=job, limited="door", retry_after=30)
        return Outcome(counted=True)

    send = Recorder(answer, delay=1.0)
    await scheduler.run(send)
    (limited_at, limited), *later = send.sent
    retried_at = next(at for at, job in later if job == limited)
    assert limited.device_id == "A"
    assert retried_at >= limited_at + 1 + 30  # answered after 1 s, then paused 30 s
    others = send.times("B") + send.times("C")
    assert len(others) == 10
    assert max(others) < limited_at + 1 + 30
    assert scheduler.stats.rate_limited_door == 1
    assert len(send.sent) == 16


async def test_a_global_429_pauses_every_request_through_the_pace():
    """After a global 429 (Retry-After 20), no request on any door passes the pace for 20 s."""
    pace = GlobalPace(None)
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=2, global_pace=pace)
    queue(scheduler, A=3, B=3, C=3)

    def answer(job: Job, n: int) -> Outcome:
        if n == 1:
            return Outcome(again=job, limited="global", retry_after=20)
        return Outcome(counted=True)

    send = Recorder(answer, pace=pace)
    await scheduler.run(send)
    (limited_at, _), *later = send.sent
    assert len(later) == 9
    assert {job.device_id for _, job in later} == {"A", "B", "C"}
    assert all(at >= limited_at + 20 for at, _ in later)
    assert scheduler.stats.rate_limited_global == 1
    assert pace.rate == 1.0  # one request seen in the last second: slowed to that, floor 1/s


async def test_a_verify_waits_its_delay_but_not_the_door_pacing():
    """A verify queued with after=5 goes ≥ 5 s later, though the door's create rate is spent."""
    scheduler = DoorScheduler(door_rate=Rate(1, 60.0), concurrency=2)
    queue(scheduler, A=2)

    def answer(job: Job, n: int) -> Outcome:
        if n == 1:
            return Outcome(again=Job("A", job.key, "verify"), after=5, counted=True)
        return Outcome(counted=True)

    send = Recorder(answer)
    await scheduler.run(send)
    (created_at, create), (verified_at, verify), (second_at, second) = send.sent
    assert (create.key, verify.key, verify.kind, second.key) == ("A-0", "A-0", "verify", "A-1")
    assert 5 <= verified_at - created_at < 6
    assert second_at - created_at >= 60


async def test_an_error_in_send_stops_dispatch_and_is_raised_as_itself():
    """send raising: nothing more is sent, the jobs in flight finish, run() raises that error."""
    scheduler = DoorScheduler(door_rate=Rate(10, 60.0), concurrency=3)
    queue(scheduler, **{f"door-{n}": 1 for n in range(6)})
    error = RunStopped("x")
    finished: list[str] = []

    async def send(job: Job) -> Outcome:
        if job.device_id == "door-0":
            await anyio.sleep(0.5)
            raise error
        await anyio.sleep(2)
        finished.append(job.device_id)
        return Outcome(counted=True)

    with pytest.raises(RunStopped) as caught:
        await scheduler.run(send)
    assert caught.value is error
    assert sorted(finished) == ["door-1", "door-2"]
    assert scheduler.stats.sent == 2


async def test_a_learnt_door_rate_paces_every_door_of_the_scheduler():
    """With no configured rate, the first door 429 teaches a Rate that then paces other doors."""
    scheduler = DoorScheduler(door_rate=None, concurrency=4)
    queue(scheduler, A=3)

    def answer(job: Job, n: int) -> Outcome:
        if n == 3:
            return Outcome(again=job, limited="door", retry_after=30)
        return Outcome(counted=True)

    send = Recorder(answer)
    await scheduler.run(send)
    learnt = scheduler.learnt_door_rate
    assert learnt is not None
    assert learnt.count == 2
    assert learnt.period == pytest.approx(30, abs=0.5)
    assert len(send.times("A")) == 4

    queue(scheduler, B=3)
    await scheduler.run(send)
    b_times = send.times("B")
    assert len(b_times) == 3
    assert b_times[1] - b_times[0] < 1  # two places in the learnt window
    assert b_times[2] - b_times[0] >= learnt.period


async def test_a_learnt_rate_holds_doors_already_dispatched_or_ready():
    """Once a door 429 teaches 1 create/30 s, no door sends a create its window is full for."""
    scheduler = DoorScheduler(door_rate=None, concurrency=2)
    scheduler.add(Job("A", "a0"))
    for n in range(4):
        scheduler.add(Job("B", f"b{n}"))
    gate = anyio.Event()
    sent: list[tuple[float, str]] = []
    violations = []

    async def send(job: Job) -> Outcome:
        now = anyio.current_time()
        rate = scheduler.learnt_door_rate
        if rate is not None and job.device_id == "B":
            recent = [at for at, d in sent if d == "B" and at > now - rate.period]
            if len(recent) + 1 > rate.count:
                violations.append((job.key, len(recent) + 1, rate))
        sent.append((now, job.device_id))
        if job.key == "a0":
            await gate.wait()
            return Outcome(again=Job("A", "a0-retry"), limited="door", retry_after=30)
        if job.key == "b1":
            gate.set()
        return Outcome(counted=True)

    await scheduler.run(send)
    assert violations == []
    assert len(sent) == 6


@pytest.mark.parametrize("rate", [0.5, 5.0, 20.0, 100.0, 250.0])
async def test_global_pace_never_exceeds_its_rate_in_any_one_second_window(rate):
    """Sends through GlobalPace: at most `rate` in every 1-s window (sliding), bursts included."""
    pace = GlobalPace(rate)
    times: list[float] = []
    total = int(rate * 5) + 3

    async def client() -> None:
        for _ in range(total // 4):
            await pace()
            times.append(anyio.current_time())

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(client)
    window = max(1.0, 1 / rate)
    limit = max(1, math.floor(rate * window))
    busiest = max(sum(1 for other in times if start <= other < start + window) for start in times)
    assert busiest <= limit
    assert busiest >= 0.9 * limit  # and it does use the rate


async def test_prepare_gets_a_doors_next_create_just_before_its_place_frees():
    """With 2 creates per 10 s, the third create on door A is prepared once, PREPARE_LEAD
    before its place frees (10 s after the first answer), and sent when it frees; a create
    the door may send at once is never prepared."""
    scheduler = DoorScheduler(door_rate=Rate(2, 10.0), concurrency=4)
    queue(scheduler, A=3)
    prepared: list[tuple[float, Job]] = []

    async def prepare(job: Job) -> None:
        prepared.append((anyio.current_time(), job))

    send = Recorder(delay=1.0)
    started = anyio.current_time()
    await scheduler.run(send, prepare)
    sent_third = send.times("A")[2]
    assert sent_third - started == pytest.approx(11.0, abs=0.01)  # answered at 1 s, + 10 s
    assert [job.key for _, job in prepared] == ["A-2"]
    assert prepared[0][0] == pytest.approx(sent_third - PREPARE_LEAD, abs=0.01)


async def test_a_prepare_that_fails_stops_the_run_with_its_own_error():
    """An exception from ``prepare`` (the ledger's disk, say) stops the sending like one from
    ``send``: nothing more goes out, and it is raised as itself."""
    scheduler = DoorScheduler(door_rate=Rate(1, 10.0), concurrency=2)
    queue(scheduler, A=3)

    async def prepare(job: Job) -> None:
        raise UsageError("disk gone")

    send = Recorder()
    with pytest.raises(UsageError, match="disk gone"):
        await scheduler.run(send, prepare)
    assert [job.key for _, job in send.sent] == ["A-0"]


def spread_latency(job: Job) -> float:
    """40-120 ms, the same for a job every time (as the sandbox's latency in benchmarks)."""
    return 0.04 + 0.008 * (int(job.key.rsplit("-", 1)[1]) * 7 % 11)


# The drip of a 100/s global limiter: its rate less its burst of 10, at the pace's margin.
DRIP_AT_100 = (100 - 10) * GLOBAL_PACE_MARGIN


async def busiest_and_slack(slack_doors: int, codes_each: int) -> Recorder:
    """Door A with 100 creates at 10 per 2 s, and ``slack_doors`` doors with ``codes_each``,
    through a 100/s global pace with 12 in flight and 40-120 ms answers; what was sent."""
    pace = GlobalPace(100.0)
    scheduler = DoorScheduler(door_rate=Rate(10, 2.0), concurrency=12, global_pace=pace)
    queue(scheduler, A=100, **{f"slack-{n}": codes_each for n in range(slack_doors)})
    send = Recorder(delay=spread_latency, pace=pace)
    await scheduler.run(send)
    return send


async def test_the_busiest_door_never_waits_for_the_others_tokens():
    """While 300 doors with slack keep the global limiter busy, the door that bounds the run
    sends each create the moment its place frees (one period after the answer it follows):
    the others go at the limiter's drip and leave its burst to that door's windows."""
    send = await busiest_and_slack(300, 3)
    answered = sorted(at + spread_latency(job) for at, job in send.sent if job.device_id == "A")
    busiest = send.times("A")
    others_end = max(at for at, job in send.sent if job.device_id != "A")
    # The n-th create takes the place that frees first: the (n-10)-th answer, + 2 s.
    waits = [at - (answered[n - 10] + 2.0) for n, at in enumerate(busiest) if n >= 10]
    while_busy = [wait for wait, at in zip(waits, busiest[10:], strict=True) if at < others_end]
    assert len(while_busy) >= 40  # the others were sending through most of its windows
    # Waiting behind the others' tokens cost 0.10-0.13 s here; the clock is virtual, so no
    # wait beyond the timers' own arithmetic is left.
    assert max(while_busy) < 1e-6
    assert min(waits) > -1e-6  # and never early
    times = sorted(at for at, _ in send.sent)
    assert max(sum(1 for at in times if start <= at < start + 1) for start in times) <= 100


async def test_doors_with_slack_go_one_per_drip_interval():
    """Doors far from the longest backlog are dispatched at most one per interval of the
    global limiter's drip, so its burst stays free; they still get most of that drip."""
    started = anyio.current_time()
    send = await busiest_and_slack(200, 2)
    dispatched = sorted(at for at, job in send.called if job.device_id != "A")
    drip = DRIP_AT_100
    # Ten turns in any ten intervals, plus the one turn made up after a wait on the limiter
    # (``GlobalPace.slack_sent``); all at once, they would be ten in one instant.
    window = 10 / drip
    within = [bisect.bisect_left(dispatched, at + window) - n for n, at in enumerate(dispatched)]
    assert max(within) <= 11
    others = sorted(at for at, job in send.sent if job.device_id != "A")
    assert others[-1] - started < 1.1 * len(others) / drip


async def test_a_create_dropped_for_a_closed_door_as_the_last_job_ends_the_run():
    """A verify that found nothing asks for its create again, but its door has been closed
    meanwhile (no space): the create is dropped, and with nothing else to do the run ends."""
    scheduler = DoorScheduler(door_rate=Rate(10, 2.0), concurrency=2, global_pace=GlobalPace(100))
    queue(scheduler, D=2)

    def answer(job: Job, n: int) -> Outcome:
        if job.kind == "verify":
            return Outcome(again=Job("D", job.key, "create"))
        if job.key == "D-0":
            return Outcome(again=Job("D", "D-0", "verify"), after=5.0, counted=True)
        return Outcome(counted=True, close_door=True)

    with anyio.fail_after(3600):
        await scheduler.run(Recorder(answer, delay=0.05))
    assert [job.key for job in scheduler.dropped] == ["D-0"]


@pytest.mark.parametrize(
    "anyio_backend",
    [virtual_backend(0.0), virtual_backend(5.0), virtual_backend(1e6)],
    ids=["clock-0", "clock-5", "clock-1e6"],
)
async def test_slack_at_keeps_the_burst_and_one_drip_interval():
    """``slack_at``, whatever the clock reads at first: at once while the burst is free; one
    interval after the first ``slack_sent``; a late turn keeps the beat, a turn later than an
    interval makes up one turn, never two; later once other requests took tokens; the end of a
    global 429's pause; never held without a global rate."""
    pace = GlobalPace(100.0)
    interval = 1 / DRIP_AT_100
    now = anyio.current_time() + 1.0  # the first door with slack comes a second into the run
    assert pace.slack_at(now) == now
    pace.slack_sent(now)
    assert pace.slack_at(now) == pytest.approx(now + interval, abs=1e-9)
    pace.slack_sent(now + interval * 1.5)  # its turn taken late: the next stays on the beat
    assert pace.slack_at(now + interval * 1.5) == pytest.approx(now + interval * 2, abs=1e-9)
    later = now + interval * 5  # a whole interval and more after its turn
    assert pace.slack_at(later) == later
    pace.slack_sent(later)
    assert pace.slack_at(later) == later  # one turn made up...
    pace.slack_sent(later)
    assert pace.slack_at(later) == pytest.approx(later + interval, abs=1e-9)  # ...not two
    fresh = GlobalPace(100.0)
    for _ in range(3):
        await fresh()
    now = anyio.current_time()
    assert fresh.slack_at(now) > now  # three tokens held: the rest is the busiest doors'
    small = GlobalPace(20.0)  # a burst of 2: nothing to keep, nobody held back
    for _ in range(2):
        await small()
    now = anyio.current_time()
    assert small.slack_at(now) == now
    fresh.rate_limited(retry_after=5)
    now = anyio.current_time()
    assert fresh.slack_at(now) == pytest.approx(now + 5, abs=0.01)
    unlimited = GlobalPace(None)
    assert unlimited.slack_at(now) == now
