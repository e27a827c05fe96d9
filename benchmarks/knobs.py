"""What the user's knobs are worth (issue 11): ``python benchmarks/knobs.py``.

Runs in the harness of ``run.py`` (same server, same certificate, same clients, each
in its own process, interleaved rounds, medians) and prints one table per knob:

  loop    raw aiohttp and the SDK on asyncio's event loop and on uvloop
  pool    the SDK with ``max_connections`` 16, 64, 100 and 256 at concurrency 64 and 256
  json    a micro-benchmark in this process: ``json.loads`` against ``orjson.loads``
          over the unique bodies, µs per body
  orjson  the SDK end to end with orjson importable and with ``import orjson`` made to
          fail (``clients.py --no-orjson``): shows the effect of an optional orjson
          path, or none if the SDK does not use one

uvloop and orjson are measured when installed (``pip install uvloop orjson``); a section
whose library is missing says so and is left out. Over https (the default, ``--no-tls``
for http) with a different body per id (``--payload same`` for the canned body). See
docs/howto/performance.md for the results and what to set.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from run import (
    BenchmarkError,
    exit_on_signal,
    run_client,
    serve,
    summarize,
    text_table,
)
from workload import canned_channels_body, session_ids

SECTIONS = ("loop", "pool", "json", "orjson")
POOL_SIZES = (16, 64, 100, 256)
POOL_CONCURRENCIES = (64, 256)

#: ``(label, client, clients.py options, concurrency)``
Config = tuple[str, str, tuple[str, ...], int]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _configs(section: str, concurrency: int) -> list[Config]:
    if section == "loop":
        return [
            (f"{client} {loop}", client, ("--loop", loop), concurrency)
            for client in ("raw", "sdk")
            for loop in ("asyncio", "uvloop")
        ]
    if section == "pool":
        return [
            (f"c={c} pool={size}", "sdk", ("--max-connections", str(size)), c)
            for c in POOL_CONCURRENCIES
            for size in POOL_SIZES
        ]
    if section == "orjson":
        return [
            ("sdk, orjson importable", "sdk", (), concurrency),
            ("sdk, import orjson fails", "sdk", ("--no-orjson",), concurrency),
        ]
    return []


def _measure(
    configs: Sequence[Config], *, n: int, rounds: int, url: str, tls: Any
) -> dict[str, list[dict[str, Any]]]:
    records: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in configs}
    for index in range(rounds):
        shift = index % len(configs)
        for label, client, options, concurrency in [*configs[shift:], *configs[:shift]]:
            records[label].append(
                run_client(
                    client,
                    n=n,
                    concurrency=concurrency,
                    url=url,
                    tls=tls,
                    options=options,
                    strict=False,
                )
            )
    return records


def _row(label: str, records: list[dict[str, Any]], base: float | None) -> list[str]:
    s = summarize(label, records)
    return [
        label,
        f"{s.lookups_per_s:,.0f}",
        f"{s.cpu_us_per_lookup:.1f}",
        f"{s.cpu_us_min:.0f}-{s.cpu_us_max:.0f}",
        "-" if base is None else f"{s.cpu_us_per_lookup / base:.2f}",
        f"{max(r['errors'] for r in records):,}",
    ]


def measured_table(
    records: dict[str, list[dict[str, Any]]], base_of: Callable[[str], str | None]
) -> str:
    """One row per configuration: median lookups/s and CPU per lookup, the CPU range over
    the rounds, the CPU ratio to the configuration ``base_of(label)`` names, and the
    most failed lookups in one round (a knob can make lookups fail)."""
    medians = {label: summarize(label, recs).cpu_us_per_lookup for label, recs in records.items()}
    rows = []
    for label, recs in records.items():
        base = base_of(label)
        rows.append(_row(label, recs, None if base is None else medians[base]))
    header = ["configuration", "lookups/s", "CPU µs/lookup", "CPU range", "CPU vs base", "errors"]
    return text_table(header, rows)


def json_table(count: int, repeats: int) -> tuple[str, dict[str, float]]:
    """``json.loads`` against ``orjson.loads`` over ``count`` unique bodies, best of
    ``repeats`` passes, in µs per body."""
    bodies = [canned_channels_body(sid).encode() for sid in session_ids(count)]
    decoders: dict[str, Callable[[bytes], Any]] = {"json.loads": json.loads}
    if _installed("orjson"):
        decoders["orjson.loads"] = importlib.import_module("orjson").loads
    best = dict.fromkeys(decoders, float("inf"))
    # Passes alternate between the decoders, so a busy moment of a shared machine
    # does not fall on one decoder's passes only.
    for _ in range(repeats):
        for name, decode in decoders.items():
            started = time.perf_counter()
            for body in bodies:
                decode(body)
            best[name] = min(best[name], time.perf_counter() - started)
    timings = {name: seconds / count * 1e6 for name, seconds in best.items()}
    base = timings["json.loads"]
    rows = [[name, f"{us:.2f}", f"{us / base:.2f}"] for name, us in timings.items()]
    size = sum(map(len, bodies)) / count
    title = f"{count:,} unique bodies of about {size:.0f} bytes, best of {repeats} passes:"
    return title + "\n" + text_table(["decoder", "µs/body", "vs json.loads"], rows), timings


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the knobs and print their tables; 1 when a client failed."""
    parser = argparse.ArgumentParser(description="Measure uvloop, orjson and pool size.")
    parser.add_argument("--n", type=int, default=20_000, help="lookups per client run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["auto", "nginx", "fake"], default="auto")
    parser.add_argument("--payload", choices=["same", "unique"], default="unique")
    parser.add_argument("--no-tls", dest="tls", action="store_false", help="plain http")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of " + ",".join(SECTIONS),
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the records here")
    args = parser.parse_args(argv)
    # As in run.py: a SIGTERM must unwind the blocks that stop the server and delete
    # the certificate.
    signal.signal(signal.SIGTERM, exit_on_signal)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    missing = {"loop": "uvloop", "orjson": "orjson"}
    out: dict[str, Any] = {"n": args.n, "rounds": args.rounds, "tls": args.tls}

    if "json" in sections:
        title, timings = json_table(args.n, 9)
        print(title + "\n")
        out["json_us_per_body"] = timings
        if "orjson.loads" not in timings:
            print("orjson is not installed (pip install orjson): json.loads alone shown\n")
    runs = [s for s in sections if s != "json"]
    for section in list(runs):
        if section in missing and not _installed(missing[section]):
            print(
                f"{section}: {missing[section]} is not installed (pip install "
                f"{missing[section]}): section left out\n"
            )
            runs.remove(section)
    if not runs:
        return 0
    session_count = max(2 * max(POOL_CONCURRENCIES), args.n)
    try:
        with serve(args.server, session_count, payload=args.payload, tls=args.tls) as (
            server,
            tls,
        ):
            print(f"server: {server.kind}: {server.description}")
            print(f"N={args.n:,}, median of {args.rounds} interleaved rounds\n")
            for section in runs:
                configs = _configs(section, args.concurrency)
                print(f"{section}:", file=sys.stderr, flush=True)
                records = _measure(configs, n=args.n, rounds=args.rounds, url=server.url, tls=tls)
                print(f"{section}:\n{measured_table(records, _base(section))}", flush=True)
                for label, recs in records.items():
                    first = next((r["first_error"] for r in recs if r["errors"]), None)
                    if first is not None:
                        print(f"  {label}: first error: {first[:300]}")
                if section == "orjson":
                    loaded = any(r["orjson_loaded"] for r in records[configs[0][0]])
                    print(f"orjson imported in the SDK's process: {'yes' if loaded else 'no'}")
                print(flush=True)
                out[section] = records
            out["server"] = attrs.asdict(server)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _base(section: str) -> Callable[[str], str | None]:
    """Which configuration each row of ``section`` is compared with."""
    if section == "loop":
        return lambda label: label.replace("uvloop", "asyncio")
    if section == "pool":
        # Against a pool as large as the requests in flight: "c=64 pool=64".
        return lambda label: f"{label.split()[0]} pool={label.split()[0][2:]}"
    return lambda _label: "sdk, orjson importable"


if __name__ == "__main__":
    sys.exit(main())
