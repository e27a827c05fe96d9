"""The soak run's upstream: a fake kod.mobi that misbehaves about once in a hundred requests.

``benchmarks/soak.py`` starts this script as a process of its own, kills it a few times
during the run and starts it again on the same port, so the app under test sees its
upstream go away and come back::

    python benchmarks/soak_upstream.py --port 8765 --sessions 500 --stats up-1.json

It serves :class:`kodmobi_async.testing.FakeKodMobi` with the first ``--sessions`` ids
of :func:`workload.session_ids` (the ids the load generator asks for), and a background
task scripts a random fault (a dropped connection, a 503, an nginx-style HTML 502 page,
or a slow answer) for about ``--fault-rate`` of the requests it has received. What it
did is kept in the ``--stats`` JSON file, rewritten often, so a process killed with
SIGKILL still leaves its counts behind (short of the last half second).

It stops by itself on SIGTERM or SIGINT, when its parent process goes away, and after
``--max-seconds``, so a soak run that dies cannot leave it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from workload import session_ids

from kodmobi_async.testing import FakeKodMobi, Fault

# How often the fault task looks at the request count, and how often the stats file is
# rewritten. Faults are scripted for the requests after the ones counted, which at
# 100-200 requests a second is a difference nobody can see.
_TICK_SECONDS = 0.02
_STATS_EVERY_SECONDS = 0.5

# The example app gives a lookup 3 s and 2 attempts, so 1.5 s an attempt. Most slow
# answers stay under that (the call succeeds, late); one in five outlasts the attempt,
# which the SDK abandons and retries.
_SLOW_SECONDS = (0.2, 1.2)
_TOO_SLOW_SECONDS = 2.0
_TOO_SLOW_SHARE = 0.2

FAULT_KINDS = ("drop", "503", "html-502", "slow")


def make_fault(kind: str, rng: random.Random) -> Fault:
    """Build one fault of a kind named in :data:`FAULT_KINDS`.

    Args:
        kind: ``"drop"``, ``"503"``, ``"html-502"`` or ``"slow"``.
        rng: Draws how slow a slow answer is.

    Returns:
        The fault to script.

    Raises:
        ValueError: ``kind`` is not one of :data:`FAULT_KINDS`.
    """
    if kind == "drop":
        return Fault.drop()
    if kind == "503":
        return Fault.status(503)
    if kind == "html-502":
        return Fault.status(502, html=True)
    if kind == "slow":
        if rng.random() < _TOO_SLOW_SHARE:
            return Fault.delay(_TOO_SLOW_SECONDS)
        return Fault.delay(rng.uniform(*_SLOW_SECONDS))
    msg = f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}"
    raise ValueError(msg)


def _write_stats(path: Path, started: float, fake: FakeKodMobi, faults: Counter[str]) -> None:
    document = {
        "pid": os.getpid(),
        "seconds": round(time.monotonic() - started, 3),
        "requests": fake.request_count,
        "connections": fake.total_connections,
        "faults": dict(faults),
    }
    # Written aside and renamed, so a reader (or a SIGKILL) never sees half a file.
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document), encoding="utf-8")
    partial.replace(path)


async def _inject_faults(
    fake: FakeKodMobi, rate: float, rng: random.Random, faults: Counter[str]
) -> None:
    seen = 0
    while True:
        await asyncio.sleep(_TICK_SECONDS)
        count = fake.request_count
        # One Bernoulli draw per request received since the last tick.
        for _ in range(count - seen):
            if rng.random() < rate:
                kind = rng.choice(FAULT_KINDS)
                fake.script(make_fault(kind, rng), times=1)
                faults[kind] += 1
        seen = count


async def serve(args: argparse.Namespace) -> None:
    """Serve until a signal, the parent's exit or ``--max-seconds``.

    Args:
        args: The parsed command line.
    """
    stats = Path(args.stats)
    parent = os.getppid()
    rng = random.Random(args.seed)
    faults: Counter[str] = Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with FakeKodMobi(host="127.0.0.1", port=args.port, record_requests=False) as fake:
        for session_id in session_ids(args.sessions):
            fake.add_session(session_id)
        started = time.monotonic()
        injector = asyncio.create_task(_inject_faults(fake, args.fault_rate, rng, faults))
        print(f"ready {fake.url} pid={os.getpid()}", flush=True)
        try:
            while not stop.is_set():
                _write_stats(stats, started, fake, faults)
                if os.getppid() != parent or time.monotonic() - started > args.max_seconds:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _STATS_EVERY_SECONDS)
        finally:
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await injector
            _write_stats(stats, started, fake, faults)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, required=True, help="loopback port to serve on")
    parser.add_argument("--sessions", type=int, default=500, help="how many ids to know")
    parser.add_argument("--stats", required=True, help="JSON file to keep the counts in")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="share of requests")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault choice")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
