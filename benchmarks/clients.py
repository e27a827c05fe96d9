"""The benchmark clients, one per process: ``python benchmarks/clients.py NAME ...``.

Each client looks up ``--n`` session ids at ``--concurrency`` against ``--url`` and
prints one JSON line: lookups that succeeded, errors, wall seconds, client CPU seconds
and peak RSS (``VmHWM``). CPU is ``getrusage(RUSAGE_SELF)`` user + system time around the measured
batch only: imports, session creation and a warm-up batch (which opens the connection
pool) come before it.

Clients:
  raw       aiohttp by hand: one session, a semaphore, ``asyncio.gather`` over one task
            per id, ``json.loads`` of the body. The floor.
  httpx     ``httpx.AsyncClient`` with the same semaphore and gather.
  naive     aiohttp plus a tenacity ``@retry`` decorator and ``cattrs.structure`` per
            call, the way one would write it without thinking about cost.
  sdk       ``KodMobiClient.gather_session_channels``.
  sdk-iter  ``KodMobiClient.iter_session_channels``, outcomes counted and dropped.

Knobs (``benchmarks/knobs.py`` turns them): ``--loop uvloop`` runs the client on uvloop;
``--max-connections`` sizes the connection pool apart from ``--concurrency``;
``--no-orjson`` makes ``import orjson`` fail, so an SDK that uses orjson when it is
installed falls back to its pure-Python path. Over https every client uses its
library's default verifying SSL context, which trusts ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import json
import platform
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from workload import API_KEY, CHANNELS_PATH, session_ids

if TYPE_CHECKING:
    import aiohttp

    from kodmobi_async import KodMobiClient

# Each client imports only the libraries it uses, inside its factory (before anything
# is measured), so that peak RSS compares the clients and not this file's imports.

__all__ = ["CLIENTS", "main"]

#: ``(lookups that succeeded, errors, first error or None)``
Tally = tuple[int, int, "str | None"]
Batch = Callable[[Iterable[str]], Awaitable[Tally]]


def _tally(outcomes: Sequence[object]) -> Tally:
    ok = sum(1 for outcome in outcomes if outcome is True)
    first = next((repr(o) for o in outcomes if o is not True), None)
    return ok, len(outcomes) - ok, first


# -- raw aiohttp ---------------------------------------------------------------------


@asynccontextmanager
async def raw(url: str, key: str, concurrency: int, pool: int) -> AsyncIterator[Batch]:
    """One ``aiohttp.ClientSession``, a semaphore, gather, ``json.loads``."""
    import aiohttp

    prefix = f"{url}{CHANNELS_PATH}?session_id="
    connector = aiohttp.TCPConnector(limit=pool)
    async with aiohttp.ClientSession(connector=connector, headers={"x-api-key": key}) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(session_id: str) -> bool:
            async with sem, session.get(prefix + session_id) as response:
                body = await response.read()
                if response.status != 200:
                    return False
                json.loads(body)
                return True

        async def batch(ids: Iterable[str]) -> Tally:
            outcomes = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
            return _tally(outcomes)

        yield batch


# -- httpx ---------------------------------------------------------------------------


@asynccontextmanager
async def httpx_client(url: str, key: str, concurrency: int, pool: int) -> AsyncIterator[Batch]:
    """``httpx.AsyncClient`` with the same semaphore and gather as :func:`raw`."""
    import httpx

    prefix = f"{url}{CHANNELS_PATH}?session_id="
    # Keep-alive for every connection, as aiohttp does: httpx's default of 20 idle
    # connections would make it reconnect at concurrency 64 and measure that instead.
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(limits=limits, headers={"x-api-key": key}) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(session_id: str) -> bool:
            async with sem:
                response = await client.get(prefix + session_id)
            if response.status_code != 200:
                return False
            json.loads(response.content)
            return True

        async def batch(ids: Iterable[str]) -> Tally:
            outcomes = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
            return _tally(outcomes)

        yield batch


# -- naive: aiohttp + tenacity decorator + cattrs ------------------------------------


def _naive_fetch() -> Callable[[aiohttp.ClientSession, str], Awaitable[list[Any]]]:
    """Define the naive client's model and fetch function, as a user's module would.

    Both are built once, like module-level definitions (which they would be in an
    application; here they sit in a function so the other clients need not import
    tenacity and cattrs).
    """
    import aiohttp
    import attrs
    import cattrs
    from tenacity import (
        retry,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    @attrs.frozen(kw_only=True)
    class Channel:
        name: str
        type: str
        is_active: bool
        timeout: int
        image_url: str | None = None
        link: str | None = None
        description: str | None = None

    @retry(
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(max=8.0),
        retry=retry_if_exception_type((aiohttp.ClientError, asyncio.TimeoutError)),
        reraise=True,
    )
    async def fetch(session: aiohttp.ClientSession, url: str) -> list[Channel]:
        async with session.get(url) as response:
            response.raise_for_status()
            data = json.loads(await response.read())
        return cattrs.structure(data, list[Channel])

    return fetch


@asynccontextmanager
async def naive(url: str, key: str, concurrency: int, pool: int) -> AsyncIterator[Batch]:
    """A tenacity-decorated fetch with ``cattrs.structure`` per id, gathered behind a
    semaphore."""
    import aiohttp

    fetch = _naive_fetch()
    prefix = f"{url}{CHANNELS_PATH}?session_id="
    connector = aiohttp.TCPConnector(limit=pool)
    async with aiohttp.ClientSession(connector=connector, headers={"x-api-key": key}) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(session_id: str) -> bool:
            async with sem:
                await fetch(session, prefix + session_id)
            return True

        async def batch(ids: Iterable[str]) -> Tally:
            outcomes = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
            return _tally(outcomes)

        yield batch


# -- the SDK -------------------------------------------------------------------------


def _sdk_client(url: str, key: str, pool: int) -> KodMobiClient:
    from kodmobi_async import KodMobiClient

    return KodMobiClient(api_key=key, base_url=url, max_connections=pool)


@asynccontextmanager
async def sdk(url: str, key: str, concurrency: int, pool: int) -> AsyncIterator[Batch]:
    """``gather_session_channels`` over the id generator."""
    async with _sdk_client(url, key, pool) as client:

        async def batch(ids: Iterable[str]) -> Tally:
            result = await client.gather_session_channels(ids, concurrency=concurrency)
            errors = result.errors
            first = repr(next(iter(errors.values()))) if errors else None
            return len(result) - len(errors), len(errors), first

        yield batch


@asynccontextmanager
async def sdk_iter(url: str, key: str, concurrency: int, pool: int) -> AsyncIterator[Batch]:
    """``iter_session_channels`` over the id generator, each outcome counted and dropped."""
    async with _sdk_client(url, key, pool) as client:

        async def batch(ids: Iterable[str]) -> Tally:
            ok = errors = 0
            first: str | None = None
            async for _session_id, outcome in client.iter_session_channels(
                ids, concurrency=concurrency
            ):
                if isinstance(outcome, list):
                    ok += 1
                else:
                    errors += 1
                    if first is None:
                        first = repr(outcome)
            return ok, errors, first

        yield batch


#: ``(url, key, concurrency, pool size)`` -> the client, open for the block.
ClientFactory = Callable[[str, str, int, int], AbstractAsyncContextManager[Batch]]

#: Name on the command line -> async context manager that yields a batch function.
CLIENTS: dict[str, ClientFactory] = {
    "raw": raw,
    "httpx": httpx_client,
    "naive": naive,
    "sdk": sdk,
    "sdk-iter": sdk_iter,
}


# -- measurement ---------------------------------------------------------------------


class GCTimer:
    """Time spent in the cyclic garbage collector, and collections per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB.

    ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over ``execve``, so a child would report at least its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    # Elsewhere: KiB on Linux, bytes on macOS; only Linux is supported for numbers.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
        "minor_faults": usage.ru_minflt,
        "voluntary_switches": usage.ru_nvcsw,
        "involuntary_switches": usage.ru_nivcsw,
    }


async def measure(
    name: str,
    *,
    url: str,
    key: str,
    n: int,
    concurrency: int,
    warmup: int,
    pool: int | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Warm the client up, then time one batch of ``n`` lookups.

    Args:
        name: A key of :data:`CLIENTS`.
        url: Server root, e.g. ``http://127.0.0.1:8080``.
        key: The ``x-api-key`` to send.
        n: Lookups in the measured batch.
        concurrency: Requests in flight at once.
        warmup: Lookups before measuring, enough to open the pool.
        pool: Connections in the pool; ``concurrency`` when None.
        profile: Write a cProfile of the measured batch alone to this path.

    Returns:
        The JSON record the harness reads.
    """
    pool = concurrency if pool is None else pool
    async with CLIENTS[name](url, key, concurrency, pool) as batch:
        if warmup:
            await batch(session_ids(warmup))
        gc.collect()
        profiler = cProfile.Profile() if profile else None
        gc_timer = GCTimer()
        gc.callbacks.append(gc_timer)
        before = _usage()
        wall0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        ok, errors, first_error = await batch(session_ids(n))
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - wall0
        after = _usage()
        gc.callbacks.remove(gc_timer)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    return {
        "client": name,
        "n": n,
        "concurrency": concurrency,
        "max_connections": pool,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "lookups": ok,
        "errors": errors,
        "first_error": first_error,
        "wall_s": wall,
        "cpu_s": (after["cpu_user_s"] - before["cpu_user_s"])
        + (after["cpu_sys_s"] - before["cpu_sys_s"]),
        **{field: after[field] - before[field] for field in after},
        "gc_s": gc_timer.seconds,
        "gc_collections": gc_timer.collections,
        "peak_rss_kib": peak_rss_kib(),
        # Whether anything (the SDK's optional fast path) imported orjson.
        "orjson_loaded": "orjson" in sys.modules,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one client and print its JSON record on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default=API_KEY)
    parser.add_argument("--warmup", type=int, default=None, help="default: 2 x concurrency")
    parser.add_argument("--profile", default=None, help="cProfile output of the measured batch")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="pool size; default: --concurrency"
    )
    parser.add_argument(
        "--no-orjson", action="store_true", help="make `import orjson` fail in this process"
    )
    args = parser.parse_args(argv)
    if args.no_orjson:
        # A None entry makes every later `import orjson` raise ImportError.
        sys.modules["orjson"] = None  # type: ignore[assignment]
    warmup = 2 * args.concurrency if args.warmup is None else args.warmup
    batch = measure(
        args.client,
        url=args.url,
        key=args.key,
        n=args.n,
        concurrency=args.concurrency,
        warmup=warmup,
        pool=args.max_connections,
        profile=args.profile,
    )
    if args.loop == "uvloop":
        # Imported by name: uvloop is a knob being measured, not a dependency.
        record: dict[str, Any] = importlib.import_module("uvloop").run(batch)
    else:
        record = asyncio.run(batch)
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
