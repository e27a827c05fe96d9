"""Rate-limit benchmark (issue 9): ``python benchmarks/ratelimit.py``.

A batch meets a server that admits R requests a second per key (a token bucket) and
answers the excess ``429`` with ``Retry-After``. This harness runs
:class:`kodmobi_async.testing.FakeKodMobi` in its rate-limit mode in a child process (so
the server does not share the client's event loop or its CPU time slices), then sends
``gather_session_channels(ids, concurrency=64)`` through a fresh ``KodMobiClient`` with
default settings per scenario:

  (a) R = 400/s, burst 40, Retry-After 1, N = 4,000
  (b) R = 50/s, burst 5, N = 500
  (c) R = 400/s, then 100/s from 3 s into the batch, N = 4,000
  (d) as (a), with the client told the limit (``KodMobiClient(rate_limit=400)``)

and prints, per scenario, the wall time against the ideal one (the time the bucket
needs to admit N requests), the requests the server saw, its 429s, the ids answered,
the errors by kind and whether the issue's target is met. ``--quick`` runs the same
scenarios scaled down to a few seconds. ``python benchmarks/ratelimit.py serve N`` is
the server child, started by the harness itself. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import inspect
import json
import logging
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
from workload import API_KEY, session_ids

HERE = Path(__file__).resolve().parent
CONCURRENCY = 64
WARMUP_IDS = CONCURRENCY

_CHILD_TIMEOUT = 120.0


class BenchmarkError(Exception):
    """The server child failed, or a batch lost ids."""


@attrs.frozen
class Step:
    """From ``at`` seconds into the batch, the server admits ``rate``/s with ``burst``."""

    at: float
    rate: float
    burst: float


@attrs.frozen(kw_only=True)
class Scenario:
    """One row of the table: the server's schedule, the client's setting, the target."""

    name: str
    n: int
    schedule: tuple[Step, ...]
    client_rate_limit: float | None = None
    max_wall_ratio: float
    max_request_ratio: float | None = None
    zero_429: bool = False

    @property
    def ideal_wall(self) -> float:
        """Seconds a perfectly paced client needs: until the bucket has admitted N."""
        return ideal_wall(self.n, self.schedule)

    @property
    def target(self) -> str:
        """The issue's target for this scenario, in words."""
        parts = ["all answered"]
        if self.zero_429:
            parts.append("0 x 429")
        parts.append(f"wall <= {self.max_wall_ratio:g} x ideal")
        if self.max_request_ratio is not None:
            parts.append(f"requests <= {self.max_request_ratio:g} x N")
        return ", ".join(parts)


def ideal_wall(n: int, schedule: Sequence[Step]) -> float:
    """The time by which a server on ``schedule`` has admitted ``n`` requests.

    The bucket starts full (the first step's burst), then gains each step's rate while
    that step lasts. A client that keeps it empty sees no later burst, so only the first
    one counts.

    Args:
        n: Requests to admit.
        schedule: The server's steps, the first at 0.

    Returns:
        Seconds from the start of the batch.
    """
    admitted = schedule[0].burst
    if n <= admitted:
        return 0.0
    for step, following in zip(schedule, [*schedule[1:], None], strict=True):
        span = None if following is None else following.at - step.at
        if span is None or admitted + step.rate * span >= n:
            return step.at + (n - admitted) / step.rate
        admitted += step.rate * span
    msg = "unreachable: the last step lasts forever"
    raise AssertionError(msg)


def scenarios(*, quick: bool) -> list[Scenario]:
    """The four scenarios of issue 9; ``quick`` scales N and the schedule down."""
    scale = 0.1 if quick else 1.0
    n_a, n_b = round(4000 * scale), round(500 * scale)
    change_at = 0.5 if quick else 3.0
    r400 = (Step(0.0, 400, 40),)
    return [
        Scenario(
            name="(a) 400/s",
            n=n_a,
            schedule=r400,
            max_wall_ratio=1.15,
            max_request_ratio=1.05,
        ),
        Scenario(name="(b) 50/s", n=n_b, schedule=(Step(0.0, 50, 5),), max_wall_ratio=1.3),
        Scenario(
            name=f"(c) 400/s, 100/s after {change_at:g} s",
            n=n_a,
            schedule=(Step(0.0, 400, 40), Step(change_at, 100, 10)),
            max_wall_ratio=1.3,
        ),
        Scenario(
            name="(d) 400/s, rate_limit=400",
            n=n_a,
            schedule=r400,
            client_rate_limit=400,
            max_wall_ratio=1.05,
            zero_429=True,
        ),
    ]


# -- the server, in a child process -------------------------------------------------
#
# The parent writes one JSON command a line on the child's stdin and reads one JSON
# answer a line from its stdout. The fake runs in a thread of the child
# (FakeKodMobi.in_thread), so the child's main thread is free to take commands and to
# change the limit on schedule.


def serve(sessions: int) -> int:
    """Run the rate-limited fake and obey commands from stdin until it closes.

    Commands: ``{"op": "schedule", "steps": [[at, rate, burst], ...]}`` (start with
    full buckets and follow the steps from now), ``{"op": "stats"}`` (report and reset
    the counts since the schedule began, and lift the limit).

    Args:
        sessions: How many ids of :func:`workload.session_ids` to register.

    Returns:
        The exit status.
    """
    from kodmobi_async.testing import FakeKodMobi

    timers: list[threading.Timer] = []
    with FakeKodMobi.in_thread(api_keys=[API_KEY]) as fake:
        for session_id in session_ids(sessions):
            fake.add_session(session_id)
        _reply({"url": fake.url})
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "schedule":
                fake.set_rate_limit(None)
                fake.clear_requests()
                steps = [Step(*step) for step in command["steps"]]
                fake.set_rate_limit(steps[0].rate, steps[0].burst, retry_after=1)
                for step in steps[1:]:
                    timer = threading.Timer(
                        step.at, fake.set_rate_limit, (step.rate, step.burst), {"retry_after": 1}
                    )
                    timer.start()
                    timers.append(timer)
                _reply({"ok": True})
            elif command["op"] == "stats":
                for timer in timers:
                    timer.cancel()
                timers.clear()
                fake.set_rate_limit(None)
                statuses = collections.Counter(r.status for r in fake.requests)
                _reply(
                    {
                        "requests": fake.request_count,
                        "rate_limited": statuses[429],
                        "peak_per_second": fake.max_requests_in_window(1.0),
                    }
                )
                fake.clear_requests()
    return 0


def _reply(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


class ServerChild:
    """The parent's handle on the server process."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self._process = process
        self.url = url

    @classmethod
    @contextlib.contextmanager
    def running(cls, sessions: int) -> Iterator[ServerChild]:
        """Start the child, wait for its URL, and stop it when the block ends."""
        command = [sys.executable, str(Path(__file__).resolve()), "serve", str(sessions)]
        process = subprocess.Popen(  # noqa: S603 -- this script, arguments we built
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            first = _read_reply(process)
            yield cls(process, first["url"])
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command and return the child's answer."""
        stdin: IO[str] | None = self._process.stdin
        if stdin is None:
            msg = "the server child has no stdin"
            raise BenchmarkError(msg)
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return _read_reply(self._process)


def _read_reply(process: subprocess.Popen[str]) -> dict[str, Any]:
    line = process.stdout.readline() if process.stdout is not None else ""
    if not line:
        msg = f"the server child exited with status {process.wait(_CHILD_TIMEOUT)}"
        raise BenchmarkError(msg)
    reply: dict[str, Any] = json.loads(line)
    return reply


# -- the client ----------------------------------------------------------------------


def client_has_rate_limit() -> bool:
    """Whether the installed ``KodMobiClient`` accepts ``rate_limit=``."""
    from kodmobi_async import KodMobiClient

    return "rate_limit" in inspect.signature(KodMobiClient).parameters


@attrs.frozen(kw_only=True)
class Row:
    """What one scenario measured."""

    scenario: Scenario
    wall: float | None = None
    requests: int = 0
    rate_limited: int = 0
    peak_per_second: int = 0
    outcomes: int = 0
    answered: int = 0
    errors: dict[str, int] = attrs.field(factory=dict)
    skipped: str | None = None

    @property
    def misses(self) -> list[str]:
        """The parts of the target that were missed; empty when it is met."""
        s = self.scenario
        if self.wall is None:
            return ["not run"]
        missed = []
        if self.answered < s.n:
            missed.append(f"{s.n - self.answered:,} ids unanswered")
        if s.zero_429 and self.rate_limited:
            missed.append(f"{self.rate_limited:,} x 429")
        if self.wall > s.max_wall_ratio * s.ideal_wall:
            missed.append(f"wall {self.wall / s.ideal_wall:.2f} x ideal")
        if s.max_request_ratio is not None and self.requests > s.max_request_ratio * s.n:
            missed.append(f"requests {self.requests / s.n:.2f} x N")
        return missed

    def as_json(self) -> dict[str, Any]:
        """The row for ``--json``."""
        s = self.scenario
        return {
            "scenario": s.name,
            "n": s.n,
            "schedule": [attrs.astuple(step) for step in s.schedule],
            "client_rate_limit": s.client_rate_limit,
            "ideal_wall_s": s.ideal_wall,
            "wall_s": self.wall,
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "peak_requests_per_second": self.peak_per_second,
            "outcomes": self.outcomes,
            "answered": self.answered,
            "errors": self.errors,
            "target": s.target,
            "met": None if self.skipped else not self.misses,
            "skipped": self.skipped,
        }


async def run_scenario(server: ServerChild, scenario: Scenario) -> Row:
    """Run one scenario's batch through a fresh client and collect the server's counts.

    Raises:
        BenchmarkError: The batch did not return one outcome per id.
    """
    from kodmobi_async import KodMobiClient

    options: dict[str, Any] = {}
    if scenario.client_rate_limit is not None:
        if not client_has_rate_limit():
            return Row(scenario=scenario, skipped="n/a (client has no rate_limit)")
        options["rate_limit"] = scenario.client_rate_limit
    ids = list(session_ids(scenario.n))
    async with KodMobiClient(API_KEY, base_url=server.url, **options) as client:
        # Open the pool's connections before the limit is on, so the measured batch
        # starts with a full bucket and warm sockets.
        await client.gather_session_channels(ids[:WARMUP_IDS], concurrency=CONCURRENCY)
        steps = [attrs.astuple(step) for step in scenario.schedule]
        server.ask({"op": "schedule", "steps": steps})
        started = time.monotonic()
        result = await client.gather_session_channels(ids, concurrency=CONCURRENCY)
        wall = time.monotonic() - started
    stats = server.ask({"op": "stats"})
    if len(result) + len(result.not_looked_up) != scenario.n:
        msg = f"{scenario.name}: {len(result)} outcomes for {scenario.n} ids"
        raise BenchmarkError(msg)
    errors = collections.Counter(type(error).__name__ for error in result.errors.values())
    return Row(
        scenario=scenario,
        wall=wall,
        requests=stats["requests"],
        rate_limited=stats["rate_limited"],
        peak_per_second=stats["peak_per_second"],
        outcomes=len(result),
        answered=len(result.ok),
        errors=dict(errors.most_common()),
    )


# -- report --------------------------------------------------------------------------

HEADER = (
    "scenario",
    "N",
    "ideal s",
    "wall s",
    "wall/ideal",
    "requests",
    "req/N",
    "429s",
    "peak req/s",
    "answered",
    "errors",
    "target (issue 9)",
    "result",
)


def _cells(row: Row) -> list[str]:
    s = row.scenario
    if row.wall is None:
        blank = ["-"] * (len(HEADER) - 5)
        return [s.name, f"{s.n:,}", f"{s.ideal_wall:.2f}", *blank, s.target, row.skipped or ""]
    errors = ", ".join(f"{name} {count:,}" for name, count in row.errors.items()) or "-"
    missed = row.misses
    return [
        s.name,
        f"{s.n:,}",
        f"{s.ideal_wall:.2f}",
        f"{row.wall:.2f}",
        f"{row.wall / s.ideal_wall:.2f}",
        f"{row.requests:,}",
        f"{row.requests / s.n:.2f}",
        f"{row.rate_limited:,}",
        f"{row.peak_per_second:,}",
        f"{row.answered:,}",
        errors,
        s.target,
        "PASS" if not missed else "MISS: " + "; ".join(missed),
    ]


def render(rows: Sequence[Row]) -> str:
    """The table: one line per scenario, text columns left-aligned, numbers right."""
    body = [_cells(row) for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(HEADER, *body, strict=True)]
    numeric = {1, 2, 3, 4, 5, 6, 7, 8, 9}

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _environment() -> dict[str, Any]:
    import aiohttp

    from kodmobi_async import __version__

    return {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "kodmobi_async": __version__,
        "client_has_rate_limit": client_has_rate_limit(),
        "concurrency": CONCURRENCY,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``serve N`` runs the server child instead)."""
    parser = argparse.ArgumentParser(
        description="Batch lookups against a rate-limited fake server (issue 9)."
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when a target is missed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario and print the table; see the module docstring."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["serve"]:
        return serve(int(arguments[1]))
    args = parse_args(arguments)
    # Today's client logs a warning per retry: thousands of lines that would bury the
    # table and cost the client CPU it would not spend in a quiet application.
    logging.getLogger("kodmobi_async").setLevel(logging.ERROR)
    plan = scenarios(quick=args.quick)
    environment = _environment()
    rows = []
    with ServerChild.running(max(s.n for s in plan)) as server:
        for scenario in plan:
            row = asyncio.run(run_scenario(server, scenario))
            done = row.skipped or f"{row.wall:.2f} s, {row.answered:,} of {scenario.n:,} answered"
            print(f"  {scenario.name}: {done}", file=sys.stderr, flush=True)
            rows.append(row)
    print(
        f"Rate-limited batches, concurrency {CONCURRENCY}, default client settings, "
        f"Python {environment['python']}, aiohttp {environment['aiohttp']}, "
        f"kodmobi_async {environment['kodmobi_async']}"
    )
    print(render(rows))
    if args.json is not None:
        document = {"environment": environment, "rows": [row.as_json() for row in rows]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    missed = any(row.misses for row in rows if row.skipped is None)
    return 1 if args.check_targets and missed else 0


if __name__ == "__main__":
    sys.exit(main())
