"""``kodmobi demo``: the SDK against its own fake server, faults included, in one command.

The fake runs on loopback in the same event loop as the client. Faults are scripted
per session, spread evenly over the batch by position, so the same ``--sessions``
always gives the same mix:

- about 3 % of the sessions drop their first connection (retried, then answered);
- about 4 % answer their first request with 503 (retried, then answered);
- the session in the middle answers 503 with ``Retry-After: 1`` once, which pauses the
  whole client for a second (retried, then answered);
- about 2 % of the ids were never created on the fake (404, not retried).

On top of that the fake admits only :data:`RATE_LIMIT` requests a second (a token
bucket holding :data:`RATE_BURST`) and answers the excess 429 with ``Retry-After: 1``,
as kod.mobi's gateway would. A 2,000-id batch sends faster than that, so the client
meets 429s within its first tenth of a second and then paces itself to what the fake
accepts; the progress bar shows the pace, and the report how many 429s it took.

Which requests meet a 429 depends on timing, so the plan does not name them: a 429
answers a request before any scripted fault or answer is used up, and every id may
meet some before it ends as planned. Every session then ends one way only: channels,
after a retry for the faulted ones, or :class:`NotFoundError` for the unknown ids.
The demo checks each outcome against that plan and against the requests the fake
recorded: a faulted id must have met its fault and then been answered, and no id may
be lost to the rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import IO, Final

import attrs

from ._batch import Outcome
from ._cli_output import pace_log, pace_status, progress_bar
from ._client import KodMobiClient
from ._errors import KodMobiError, NotFoundError
from ._retry import RetryPolicy
from .testing import FakeKodMobi, Fault, RecordedRequest, new_session_id

__all__ = ["Expected", "Findings", "Plan", "check", "make_plan", "run_demo"]

RETRY_AFTER_SECONDS: Final = 1
#: Requests per second the demo's fake admits. Below what a batch of 2,000 lookups
#: reaches on loopback even on a slow machine, so the limit is met; high enough that
#: the default demo still takes a few seconds only.
RATE_LIMIT: Final = 400.0
#: Requests the fake's bucket admits at once: a tenth of a second's worth.
RATE_BURST: Final = 40.0
# How often the demo reads the client's pace, for the "paced at" of the report.
_PACE_SAMPLE_SECONDS: Final = 0.1
_THROTTLED: Final = 429
# Faults by position in the batch, per 100 ids (3 drops, 4 x 503, 2 unknown ids).
_DROP_SLOTS: Final = frozenset({7, 38, 69})
_UNAVAILABLE_SLOTS: Final = frozenset({15, 46, 77, 96})
_UNKNOWN_SLOTS: Final = frozenset({27, 88})
_MAX_REPORTED_MISMATCHES: Final = 5
# The command line speaks here (-v), not the SDK.
_logger = logging.getLogger("kodmobi_async.cli")


class Expected(enum.Enum):
    """How the demo scripted one id to end."""

    OK = "answered"
    DROP = "dropped connection, then answered"
    UNAVAILABLE = "503, then answered"
    PAUSED = f"503 with Retry-After: {RETRY_AFTER_SECONDS}, then answered"
    NOT_FOUND = "unknown id, 404"

    @property
    def transient(self) -> bool:
        """Whether the id gets one retryable fault before its answer."""
        return self in _TRANSIENT


_TRANSIENT: Final = frozenset({Expected.DROP, Expected.UNAVAILABLE, Expected.PAUSED})
_FAULTS: Final[Mapping[Expected, Fault]] = {
    Expected.DROP: Fault.drop(),
    Expected.UNAVAILABLE: Fault.status(503),
    Expected.PAUSED: Fault.status(503, retry_after=RETRY_AFTER_SECONDS),
}
# What the fake records for a request that met the fault: a dropped connection has no
# status.
_FAULT_STATUS: Final[Mapping[Expected, int | None]] = {
    Expected.DROP: None,
    Expected.UNAVAILABLE: 503,
    Expected.PAUSED: 503,
}


@attrs.frozen
class Plan:
    """The ids to look up, in order, and how each should end."""

    expected: Mapping[str, Expected]

    @property
    def counts(self) -> Counter[Expected]:
        """How many ids of each kind the plan has."""
        return Counter(self.expected.values())


def _kind_at(index: int, sessions: int, faults: bool) -> Expected:
    if not faults:
        return Expected.OK
    if index == sessions // 2:
        return Expected.PAUSED
    slot = index % 100
    if slot in _DROP_SLOTS:
        return Expected.DROP
    if slot in _UNAVAILABLE_SLOTS:
        return Expected.UNAVAILABLE
    if slot in _UNKNOWN_SLOTS:
        return Expected.NOT_FOUND
    return Expected.OK


def make_plan(fake: FakeKodMobi, sessions: int, *, faults: bool) -> Plan:
    """Create the sessions on ``fake`` and script their faults.

    Args:
        fake: A running fake server.
        sessions: How many ids the batch looks up, unknown ones included.
        faults: Script faults and unknown ids; ``False`` gives a clean run.

    Returns:
        The plan, its ids in lookup order.
    """
    kinds = [_kind_at(index, sessions, faults) for index in range(sessions)]
    known = iter(fake.add_sessions(sum(kind is not Expected.NOT_FOUND for kind in kinds)))
    expected: dict[str, Expected] = {}
    for kind in kinds:
        session_id = new_session_id() if kind is Expected.NOT_FOUND else next(known)
        expected[session_id] = kind
        fault = _FAULTS.get(kind)
        if fault is not None:
            fake.script_session(session_id, fault, times=1)
    return Plan(expected)


@attrs.frozen(kw_only=True)
class Findings:
    """What :func:`check` made of a run.

    Attributes:
        recovered: Ids retried (more than one request) whose last answer was 200.
        throttled: Ids that met at least one 429.
        throttled_requests: How many requests the fake answered 429.
        mismatches: Each id that did not end as scripted, with what was scripted and
            what happened instead.
    """

    recovered: frozenset[str]
    throttled: frozenset[str]
    throttled_requests: int
    mismatches: Mapping[str, str]


def _met_plan(kind: Expected, outcome: Outcome | None, seen: list[int | None]) -> bool:
    if kind is Expected.NOT_FOUND:
        return isinstance(outcome, NotFoundError)
    if not isinstance(outcome, list):
        return False
    if not kind.transient:
        return True
    # The scripted fault was served (a 429 never uses it up), and a retry answered.
    return _FAULT_STATUS[kind] in seen and len(seen) > 1 and seen[-1] == 200


def check(
    plan: Plan,
    outcomes: Mapping[str, Outcome],
    requests: list[RecordedRequest],
) -> Findings:
    """Compare what happened with the plan.

    An id may meet any number of 429s from the fake's rate limit before it ends as
    planned; it must still end so, with its scripted fault met on the way.

    Args:
        plan: The plan the fake was scripted with.
        outcomes: Each id's channels or error, from the batch.
        requests: What the fake recorded.

    Returns:
        The findings: who recovered, who met the rate limit, and every mismatch.
    """
    statuses: dict[str, list[int | None]] = {}
    for request in requests:
        if request.session_id is not None:
            statuses.setdefault(request.session_id.upper(), []).append(request.status)
    recovered = frozenset(
        session_id for session_id, seen in statuses.items() if len(seen) > 1 and seen[-1] == 200
    )
    throttled = frozenset(session_id for session_id, seen in statuses.items() if _THROTTLED in seen)
    mismatches = {}
    for session_id, kind in plan.expected.items():
        outcome = outcomes.get(session_id)
        if not _met_plan(kind, outcome, statuses.get(session_id, [])):
            got = "no outcome" if outcome is None else _describe(outcome)
            mismatches[session_id] = f"scripted {kind.value}, got {got}"
    return Findings(
        recovered=recovered,
        throttled=throttled,
        throttled_requests=sum(request.status == _THROTTLED for request in requests),
        mismatches=mismatches,
    )


def _describe(outcome: Outcome) -> str:
    if isinstance(outcome, KodMobiError):
        return f"{type(outcome).__name__}: {outcome}"
    return f"{len(outcome)} channel(s)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _recovered_detail(by_fault: Counter[Expected], after_429: int) -> str:
    if not by_fault:
        return ""
    parts = [
        f"{by_fault[Expected.DROP]} dropped",
        f"{by_fault[Expected.UNAVAILABLE] + by_fault[Expected.PAUSED]} x 503",
    ]
    if after_429:
        parts.append(f"{after_429} after 429s only")
    unscripted = by_fault[Expected.OK] - after_429
    if unscripted:
        # A lookup the machine was too slow for (an attempt timed out) and that a
        # retry then saved: not in the plan, but not a failure either.
        parts.append(f"{unscripted} unscripted")
    return f" ({', '.join(parts)})"


def _rate_limit_line(findings: Findings, paced: float | None) -> str:
    label = f"Rate limit {RATE_LIMIT:g}/s"
    if not findings.throttled_requests:
        return f"{label:<19}no 429: this machine never sent faster"
    lost = len(findings.throttled & findings.mismatches.keys())
    pace = "" if paced is None else f", paced at ~{paced:,.0f} req/s"
    return (
        f"{label:<19}{findings.throttled_requests} x 429 on "
        f"{_plural(len(findings.throttled), 'id')}{pace}, "
        + ("no id lost" if not lost else f"{_plural(lost, 'id')} lost")
    )


def _scripted_lines(counts: Counter[Expected], faults: bool) -> list[str]:
    if not faults:
        return ["Scripted: no faults, no rate limit"]
    return [
        f"Scripted: {_plural(counts[Expected.DROP], 'dropped connection')}, "
        f"{counts[Expected.UNAVAILABLE]} x 503, "
        f"{counts[Expected.PAUSED]} x 503 with Retry-After: {RETRY_AFTER_SECONDS}, "
        f"{_plural(counts[Expected.NOT_FOUND], 'unknown id')}",
        f"Rate limit: {RATE_LIMIT:g} requests/s per key, burst {RATE_BURST:g}, "
        f"429 with Retry-After: {RETRY_AFTER_SECONDS} above it",
    ]


@contextlib.asynccontextmanager
async def _pace_samples(client: KodMobiClient) -> AsyncIterator[list[float]]:
    """The rates the client paced itself at, read every tenth of a second in the block.

    Readings during a pause, or while nothing limits the client, are left out.
    """
    samples: list[float] = []

    async def sample() -> None:
        while True:
            state = client.pace
            if state.rate is not None and not state.paused_for:
                samples.append(state.rate)
            await asyncio.sleep(_PACE_SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # keeps a Ctrl-C's cancellation


async def run_demo(
    *,
    sessions: int,
    faults: bool,
    concurrency: int,
    show_progress: bool,
    out: IO[str],
) -> bool:
    """Run the demo and print its report to ``out``.

    Args:
        sessions: How many ids to look up.
        faults: Script faults, unknown ids and the rate limit.
        concurrency: Lookups in flight at once.
        show_progress: Draw a progress bar on stderr.
        out: Where the report goes.

    Returns:
        Whether every session ended as scripted.
    """
    async with FakeKodMobi(
        rate_limit=RATE_LIMIT if faults else None,
        burst=RATE_BURST if faults else None,
        retry_after=RETRY_AFTER_SECONDS,
    ) as fake:
        plan = make_plan(fake, sessions, faults=faults)
        counts = plan.counts
        transient = sum(counts[kind] for kind in _TRANSIENT)
        # The client-wide retry budget (100 tokens, +0.1 per success by default) stops
        # retries when many calls fail at once, so that an outage is not multiplied by
        # the retry count. Here every transient fault is scripted and must be retried
        # once, and a large run holds hundreds of them: size the budget to the plan
        # (plus headroom for a retry the loaded machine might cause) so that the demo
        # shows recovery, not the budget. Real clients should keep the default. (429s
        # spend no budget: they are the server asking for a slower pace, not failures.)
        # Short waits keep `--sessions 5000` to seconds; Retry-After is honoured as sent.
        policy = RetryPolicy(initial_wait=0.05, max_wait=0.5, budget=float(transient + 100))
        print(f"Fake kod.mobi on {fake.url}: {_plural(sessions, 'session id')}", file=out)
        print("\n".join(_scripted_lines(counts, faults)), file=out, flush=True)

        async with KodMobiClient(
            api_key=fake.api_key,
            base_url=fake.url,
            retry=policy,
            max_connections=concurrency,
        ) as client:
            started = time.perf_counter()
            with progress_bar(
                sessions,
                "looking up",
                enabled=show_progress,
                transient=False,
                status=lambda: pace_status(client.pace),
            ) as on_progress:
                async with pace_log(lambda: client.pace, _logger), _pace_samples(client) as rates:
                    result = await client.gather_session_channels(
                        plan.expected, concurrency=concurrency, on_progress=on_progress
                    )
            elapsed = time.perf_counter() - started
        # The pace moves around the limit (it probes upwards until a 429 cuts it): the
        # median says where it settled.
        paced = statistics.median(rates) if rates else None
        requests = fake.requests

    findings = check(plan, result, requests)
    errors = Counter(type(error).__name__ for error in result.errors.values())
    by_fault = Counter(plan.expected[sid] for sid in findings.recovered if sid in plan.expected)
    after_429 = sum(
        plan.expected.get(sid) is Expected.OK for sid in findings.recovered & findings.throttled
    )

    rate = len(result) / elapsed if elapsed > 0 else float("inf")
    lines = [
        "",
        f"Looked up          {len(result)} in {elapsed:.2f} s ({rate:,.0f} lookups/s)",
        f"Answered           {len(result.ok)}",
        f"Retried, recovered {len(findings.recovered)}" + _recovered_detail(by_fault, after_429),
    ]
    if faults:
        lines.append(_rate_limit_line(findings, paced))
    lines += [
        "Errors by kind     "
        + (", ".join(f"{name} {count}" for name, count in errors.most_common()) or "none"),
        f"Requests sent      {len(requests)}",
    ]
    mismatches = findings.mismatches
    verdict = (
        f"yes, all {len(plan.expected)}"
        if not mismatches
        else f"NO: {len(mismatches)} of {len(plan.expected)} did not"
    )
    lines.append(f"As scripted        {verdict}")
    shown = list(mismatches.items())[:_MAX_REPORTED_MISMATCHES]
    lines += [f"  {session_id}: {what}" for session_id, what in shown]
    if len(mismatches) > _MAX_REPORTED_MISMATCHES:
        lines.append(f"  ... and {len(mismatches) - _MAX_REPORTED_MISMATCHES} more")
    print("\n".join(lines), file=out, flush=True)
    return not mismatches
