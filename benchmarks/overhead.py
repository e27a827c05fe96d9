"""The SDK's own CPU per lookup, with the network taken out: ``python benchmarks/overhead.py``.

``run.py`` compares whole clients over real sockets, where aiohttp, TLS and the event
loop are most of the cost and one round's noise is larger than the SDK's share. This
measures only what the SDK adds on top of aiohttp: each lookup goes through the real
client (argument checks, the request path, the retry and pace bookkeeping, decoding
and structuring, the batch), but the aiohttp session is replaced by a stand-in that
answers at once with a channel list carrying the id, as ``--payload unique`` does. The
table splits the cost into its parts:

- ``decode``: ``json.loads`` (what a hand-written client does) next to the SDK's
  decode of the same body (depth check, parser, cattrs structuring into four frozen
  ``SessionChannel`` objects);
- ``get_session_channels``: one call after another, so every part of a call but the
  socket;
- ``gather_session_channels``: the same ids as one batch (workers, outcomes in input
  order, the result kept).

Figures are medians of ``--repeat`` runs of ``--n`` lookups, in µs of process CPU
time; they are this machine's, and the ratios between rows carry over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from workload import canned_channels_body, session_ids

from kodmobi_async import KodMobiClient
from kodmobi_async._protocol import decode_channels_response

__all__ = ["main", "measure"]


class _Answer:
    """What the transport reads of an aiohttp response, answered from memory."""

    status = 200

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.content_length = len(body)
        self.headers = {"Content-Type": "application/json"}

    async def read(self) -> bytes:
        return self.body


class _Exchange:
    def __init__(self, body: bytes) -> None:
        self._answer = _Answer(body)

    async def __aenter__(self) -> _Answer:
        return self._answer

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _StandIn:
    """An aiohttp session that answers every request at once, with the id in the body.

    The answers are made up front, so making them is not counted.
    """

    closed = False

    def __init__(self, answers: dict[str, _Exchange]) -> None:
        self._answers = answers

    def request(self, method: str, url: Any, **_: Any) -> _Exchange:
        return self._answers[url.raw_query_string.partition("=")[2]]


def _cpu_per_item(run: Callable[[], object], count: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / count * 1e6


async def _async_cpu_per_item(run: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.process_time()
    await run()
    return (time.process_time() - started) / count * 1e6


async def measure(n: int, repeat: int) -> dict[str, float]:
    """Median µs of CPU per lookup for each row of the table.

    Args:
        n: Lookups per run.
        repeat: Runs per row; the median is reported.

    Returns:
        Each row's label and its median.
    """
    ids = list(session_ids(n))
    bodies = [canned_channels_body(description=session_id).encode() for session_id in ids]
    samples: dict[str, list[float]] = {
        "decode: json.loads": [],
        "decode: SDK (parse + structure)": [],
        "get_session_channels, one by one": [],
        "gather_session_channels, one batch": [],
    }
    async with KodMobiClient("benchmark-key", base_url="http://127.0.0.1:9") as client:
        transport = client._transport  # the stand-in replaces the socket
        transport.ensure_session()
        answers = {sid: _Exchange(body) for sid, body in zip(ids, bodies, strict=True)}
        real = transport._session
        transport._session = _StandIn(answers)  # type: ignore[assignment]

        async def one_by_one() -> None:
            for session_id in ids:
                await client.get_session_channels(session_id)

        async def batch() -> None:
            result = await client.gather_session_channels(ids, concurrency=64)
            if len(result.ok) != n:  # a fast failure would be a false saving
                msg = f"the stand-in's lookups failed: {next(iter(result.errors.values()))!r}"
                raise RuntimeError(msg)

        try:
            for _ in range(repeat):
                samples["decode: json.loads"].append(
                    _cpu_per_item(lambda: [json.loads(body) for body in bodies], n)
                )
                samples["decode: SDK (parse + structure)"].append(
                    _cpu_per_item(
                        lambda: [decode_channels_response(200, {}, body) for body in bodies], n
                    )
                )
                samples["get_session_channels, one by one"].append(
                    await _async_cpu_per_item(one_by_one, n)
                )
                samples["gather_session_channels, one batch"].append(
                    await _async_cpu_per_item(batch, n)
                )
        finally:
            transport._session = real  # closed with the client
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit status 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="lookups per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (median)")
    args = parser.parse_args(argv)
    medians = asyncio.run(measure(args.n, args.repeat))
    base = medians["decode: json.loads"]
    width = max(map(len, medians))
    print(f"SDK CPU per lookup without the network: N={args.n:,}, median of {args.repeat}")
    print(f"{'part':<{width}}  µs/lookup  vs json.loads")
    for label, value in medians.items():
        print(f"{label:<{width}}  {value:9.1f}  {value / base:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
