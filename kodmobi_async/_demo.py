"""``kodmobi demo``: the SDK against its own fake server, faults included, in one command.

The fake runs on loopback in the same event loop as the client. Faults are scripted
per session, spread evenly over the batch by position, so the same ``--sessions``
always gives the same mix:

- about 3 % of the sessions drop their first connection (retried, then answered);
- about 4 % answer their first request with 503 (retried, then answered);
- the session in the middle answers 429 with ``Retry-After: 1`` once, which pauses the
  whole client for a second (retried, then answered);
- about 2 % of the ids were never created on the fake (404, not retried).

Every session then ends one way only: channels, after a retry for the faulted ones, or
:class:`NotFoundError` for the unknown ids. The demo checks each outcome against that
plan and against the requests the fake recorded.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Mapping
from typing import IO, Final

import attrs

from ._batch import Outcome
from ._cli_output import progress_bar
from ._client import KodMobiClient
from ._errors import KodMobiError, NotFoundError
from ._retry import RetryPolicy
from .testing import FakeKodMobi, Fault, RecordedRequest, new_session_id

__all__ = ["Expected", "Plan", "check", "make_plan", "run_demo"]

RETRY_AFTER_SECONDS: Final = 1
# Faults by position in the batch, per 100 ids (3 drops, 4 x 503, 2 unknown ids).
_DROP_SLOTS: Final = frozenset({7, 38, 69})
_UNAVAILABLE_SLOTS: Final = frozenset({15, 46, 77, 96})
_UNKNOWN_SLOTS: Final = frozenset({27, 88})
_MAX_REPORTED_MISMATCHES: Final = 5


class Expected(enum.Enum):
    """How the demo scripted one id to end."""

    OK = "answered at once"
    DROP = "dropped connection, then answered"
    UNAVAILABLE = "503, then answered"
    RATE_LIMITED = f"429 with Retry-After: {RETRY_AFTER_SECONDS}, then answered"
    NOT_FOUND = "unknown id, 404"

    @property
    def transient(self) -> bool:
        """Whether the id gets one retryable fault before its answer."""
        return self in _TRANSIENT


_TRANSIENT: Final = frozenset({Expected.DROP, Expected.UNAVAILABLE, Expected.RATE_LIMITED})
_FAULTS: Final[Mapping[Expected, Fault]] = {
    Expected.DROP: Fault.drop(),
    Expected.UNAVAILABLE: Fault.status(503),
    Expected.RATE_LIMITED: Fault.status(429, retry_after=RETRY_AFTER_SECONDS),
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
        return Expected.RATE_LIMITED
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


def check(
    plan: Plan,
    outcomes: Mapping[str, Outcome],
    requests: list[RecordedRequest],
) -> tuple[set[str], list[str]]:
    """Compare what happened with the plan.

    Args:
        plan: The plan the fake was scripted with.
        outcomes: Each id's channels or error, from the batch.
        requests: What the fake recorded.

    Returns:
        The ids that were retried and recovered (more than one request, the last one
        answered 200), and one line per id that did not end as scripted.
    """
    statuses: dict[str, list[int | None]] = {}
    for request in requests:
        if request.session_id is not None:
            statuses.setdefault(request.session_id.upper(), []).append(request.status)
    recovered = {
        session_id for session_id, seen in statuses.items() if len(seen) > 1 and seen[-1] == 200
    }
    mismatches = []
    for session_id, kind in plan.expected.items():
        outcome = outcomes.get(session_id)
        if kind is Expected.NOT_FOUND:
            ok = isinstance(outcome, NotFoundError)
        else:
            ok = isinstance(outcome, list) and (not kind.transient or session_id in recovered)
        if not ok:
            got = "no outcome" if outcome is None else _describe(outcome)
            mismatches.append(f"{session_id}: scripted {kind.value}, got {got}")
    return recovered, mismatches


def _describe(outcome: Outcome) -> str:
    if isinstance(outcome, KodMobiError):
        return f"{type(outcome).__name__}: {outcome}"
    return f"{len(outcome)} channel(s)"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _recovered_detail(by_fault: Counter[Expected]) -> str:
    if not by_fault:
        return ""
    parts = [
        f"{by_fault[Expected.DROP]} dropped",
        f"{by_fault[Expected.UNAVAILABLE]} x 503",
        f"{by_fault[Expected.RATE_LIMITED]} x 429",
    ]
    unscripted = by_fault[Expected.OK]
    if unscripted:
        # A lookup the machine was too slow for (an attempt timed out) and that a
        # retry then saved: not in the plan, but not a failure either.
        parts.append(f"{unscripted} unscripted")
    return f" ({', '.join(parts)})"


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
        faults: Script faults and unknown ids.
        concurrency: Lookups in flight at once.
        show_progress: Draw a progress bar on stderr.
        out: Where the report goes.

    Returns:
        Whether every session ended as scripted.
    """
    async with FakeKodMobi() as fake:
        plan = make_plan(fake, sessions, faults=faults)
        counts = plan.counts
        transient = sum(counts[kind] for kind in _TRANSIENT)
        # The client-wide retry budget (100 tokens, +0.1 per success by default) stops
        # retries when many calls fail at once, so that an outage is not multiplied by
        # the retry count. Here every transient fault is scripted and must be retried
        # once, and a large run holds hundreds of them: size the budget to the plan
        # (plus headroom for a retry the loaded machine might cause) so that the demo
        # shows recovery, not the budget. Real clients should keep the default.
        # Short waits keep `--sessions 5000` to seconds; the 429's Retry-After is
        # honoured as sent.
        policy = RetryPolicy(initial_wait=0.05, max_wait=0.5, budget=float(transient + 100))
        print(f"Fake kod.mobi on {fake.url}: {_plural(sessions, 'session id')}", file=out)
        if faults:
            print(
                f"Scripted: {_plural(counts[Expected.DROP], 'dropped connection')}, "
                f"{counts[Expected.UNAVAILABLE]} x 503, "
                f"{counts[Expected.RATE_LIMITED]} x 429 (Retry-After: {RETRY_AFTER_SECONDS}), "
                f"{_plural(counts[Expected.NOT_FOUND], 'unknown id')}",
                file=out,
            )
        else:
            print("Scripted: no faults", file=out)
        out.flush()

        async with KodMobiClient(
            api_key=fake.api_key,
            base_url=fake.url,
            retry=policy,
            max_connections=concurrency,
        ) as client:
            started = time.perf_counter()
            with progress_bar(
                sessions, "looking up", enabled=show_progress, transient=False
            ) as on_progress:
                result = await client.gather_session_channels(
                    plan.expected, concurrency=concurrency, on_progress=on_progress
                )
            elapsed = time.perf_counter() - started
        requests = fake.requests

    recovered, mismatches = check(plan, result, requests)
    errors = Counter(type(error).__name__ for error in result.errors.values())
    by_fault = Counter(plan.expected[sid] for sid in recovered if sid in plan.expected)

    rate = len(result) / elapsed if elapsed > 0 else float("inf")
    lines = [
        "",
        f"Looked up          {len(result)} in {elapsed:.2f} s ({rate:,.0f} lookups/s)",
        f"Answered           {len(result.ok)}",
        f"Retried, recovered {len(recovered)}" + _recovered_detail(by_fault),
        "Errors by kind     "
        + (", ".join(f"{name} {count}" for name, count in errors.most_common()) or "none"),
        f"Requests sent      {len(requests)}",
    ]
    passed = not mismatches
    verdict = (
        f"yes, all {len(plan.expected)}"
        if passed
        else f"NO: {len(mismatches)} of {len(plan.expected)} did not"
    )
    lines.append(f"As scripted        {verdict}")
    lines += [f"  {line}" for line in mismatches[:_MAX_REPORTED_MISMATCHES]]
    if len(mismatches) > _MAX_REPORTED_MISMATCHES:
        lines.append(f"  ... and {len(mismatches) - _MAX_REPORTED_MISMATCHES} more")
    print("\n".join(lines), file=out, flush=True)
    return passed
