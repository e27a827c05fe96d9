"""Batch checks: many sessions through one client, with one outcome per id.

Usage: ``python batch_checks.py [SESSION_ID ...]``. With ``KODMOBI_BASE_URL`` and
``KODMOBI_API_KEY`` set it checks the given ids against that service; otherwise it
starts the SDK's fake kod.mobi on a loopback port and also shows the retry budget and
the rate-limit pause at work.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TextIO

from kodmobi_async import (
    BatchResult,
    KodMobiClient,
    KodMobiError,
    NotFoundError,
    RetryPolicy,
)
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id


async def nightly_check(client: KodMobiClient, session_ids: Iterable[str]) -> BatchResult:
    """Look every id up, reporting progress at each quarter."""
    reported = set()

    def on_progress(done: int, total: int | None) -> None:
        quarter = 4 * done // total if total else 0
        if quarter and quarter not in reported:
            reported.add(quarter)
            print(f"  {done}/{total} looked up")

    return await client.gather_session_channels(
        session_ids, concurrency=50, on_progress=on_progress
    )


def summarize(results: BatchResult) -> None:
    """Print what a batch found: reachable sessions, and failures by kind."""
    reachable = sum(1 for channels in results.ok.values() if any(c.is_active for c in channels))
    print(f"{len(results)} sessions: {reachable} reachable, {len(results.errors)} failed")
    for kind, count in Counter(type(e).__name__ for e in results.errors.values()).items():
        print(f"  {kind}: {count}")
    expired = [sid for sid, error in results.errors.items() if isinstance(error, NotFoundError)]
    if expired:
        print(f"  e.g. {expired[0]} is unknown to kod.mobi (expired?)")


async def export_jsonl(client: KodMobiClient, session_ids: AsyncIterator[str], out: TextIO) -> int:
    """Write one JSON line per session as each lookup finishes; return how many."""
    written = 0
    async for session_id, outcome in client.iter_session_channels(session_ids, concurrency=20):
        record: dict[str, object] = {"session_id": session_id}
        if isinstance(outcome, KodMobiError):
            record["error"] = type(outcome).__name__
        else:
            record["active"] = [str(c.type) for c in outcome if c.is_active]
        out.write(json.dumps(record) + "\n")
        written += 1
    return written


async def ids_from_database(session_ids: list[str]) -> AsyncIterator[str]:
    """Stands in for an async database cursor: yields ids one at a time."""
    for session_id in session_ids:
        await asyncio.sleep(0)
        yield session_id


async def outage(fake: FakeKodMobi, session_ids: list[str], budget: int) -> None:
    """Every request fails with 503: count what the retry budget lets through."""
    fake.script(Fault.status(503), times=None)
    fake.clear_requests()
    policy = RetryPolicy(budget=budget)
    async with KodMobiClient(api_key=fake.api_key, base_url=fake.url, retry=policy) as client:
        results = await client.gather_session_channels(session_ids)
    fake.clear_faults()
    kinds = Counter(type(e).__name__ for e in results.errors.values())
    print(
        f"outage: {len(session_ids)} lookups sent {fake.request_count} requests "
        f"(at most {len(session_ids) * policy.attempts} without a budget of {budget}); "
        + ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
    )


async def rate_limited(count: int, rate: int) -> None:
    """A server that admits `rate` requests a second: the client finds that pace."""
    async with (
        FakeKodMobi(rate_limit=rate) as fake,  # a token bucket per key, burst rate/10
        KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client,
    ):
        session_ids = fake.add_sessions(count)
        started = time.monotonic()
        results = await client.gather_session_channels(session_ids, concurrency=64)
        elapsed = time.monotonic() - started
        throttled = sum(1 for r in fake.requests if r.status == 429)
        pace = client.pace.rate or 0.0
    print(
        f"limit {rate}/s: {len(results.ok)} of {len(results)} answered in {elapsed:.1f} s "
        f"(at least {len(session_ids) / rate:.1f} s), {throttled} x 429, "
        f"pacing at {pace:.0f}/s"
    )


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the batch examples against a fake kod.mobi, unless ``KODMOBI_BASE_URL`` is set."""
    args = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("KODMOBI_BASE_URL"):
        async with KodMobiClient() as client:
            summarize(await nightly_check(client, args))
        return

    async with FakeKodMobi() as fake:
        known = fake.add_sessions(390)
        unknown = [new_session_id() for _ in range(10)]
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:
            summarize(await nightly_check(client, known + unknown))
            some = ids_from_database([unknown[0], *known[:4]])
            print(f"exported {await export_jsonl(client, some, sys.stdout)} sessions")
        await outage(fake, known[:200], budget=20)
    await rate_limited(300, rate=200)


if __name__ == "__main__":
    asyncio.run(main())
