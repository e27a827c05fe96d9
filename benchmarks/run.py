"""Benchmark harness for batch lookups (issue 3): ``python benchmarks/run.py``.

Starts a local server (nginx if installed, else ``FakeKodMobi``), then times four
clients, each in its own process, interleaved over several rounds:

  raw    hand-written aiohttp (one session, semaphore, gather, json.loads): the floor
  httpx  httpx.AsyncClient with the same semaphore and gather
  naive  aiohttp + tenacity @retry + cattrs.structure per call
  sdk    KodMobiClient.gather_session_channels

and prints lookups/s, client CPU per lookup, peak RSS and the ratios to raw. Every
answer carries its request's session id (``--payload unique``, the default), so no two
bodies are equal; ``--payload same`` serves one canned body. ``--tls`` serves https
(TLS 1.3) with a throwaway self-signed certificate that every client trusts the same
way: ``SSL_CERT_FILE`` in its environment, read by Python's default SSL context. It then
runs the SDK's streaming and gathering APIs at growing batch sizes (ids from a
generator) to show how peak memory grows, and says whether each target of the issue is
met. ``--quick`` is a smoke test with tiny batches. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from servers import (
    NGINX_INSTALL_HINT,
    Server,
    Tls,
    find_nginx,
    make_certificate,
    run_fake,
    run_nginx,
)
from workload import API_KEY

HERE = Path(__file__).resolve().parent
CLIENTS_SCRIPT = HERE / "clients.py"
RESULTS_DIR = HERE / "results"

#: The compared clients, in the order of the first round.
COMPARED = ("raw", "httpx", "naive", "sdk")
#: The SDK's batch APIs in the memory table: child name -> label.
MEMORY_APIS = {"sdk-iter": "iter_session_channels", "sdk": "gather_session_channels"}

CPU_TARGET = 1.0  # sdk CPU per lookup <= this x raw
CPU_AIM = 0.9  # issue 11: what to aim for, over https with a different body per id
SPEED_TARGET = 1.5  # sdk lookups/s >= this x naive and x httpx
MEMORY_TARGET = 1.5  # peak RSS at the largest N <= this x the RSS at --n

_QUICK = {"n": 400, "rounds": 1, "memory_ns": (800, 1600)}
_CHILD_TIMEOUT = 3600.0


class BenchmarkError(Exception):
    """A client process failed or its lookups did not all succeed."""


@attrs.frozen
class Summary:
    """One client's numbers: the median over rounds of each measure."""

    client: str
    n: int
    lookups_per_s: float
    cpu_us_per_lookup: float
    cpu_us_min: float
    cpu_us_max: float
    peak_rss_mib: float
    errors: int
    runs: int
    #: Median over rounds of this client's CPU per lookup over raw's in the same round,
    #: and the lowest and highest of those ratios. Load on a shared machine drifts
    #: between rounds; within a round the clients run back to back, so the paired
    #: ratio cancels most of the drift that the ratio of medians keeps.
    cpu_vs_raw_paired: float
    cpu_vs_raw_min: float
    cpu_vs_raw_max: float


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summarize(
    client: str, records: Sequence[dict[str, Any]], raw: Sequence[dict[str, Any]] | None = None
) -> Summary:
    """Median lookups/s, CPU µs per lookup and peak RSS of ``records`` (one client),
    the lowest and highest CPU per lookup among the rounds, and its CPU over ``raw``'s
    (the raw client's records, round by round; NaN without them)."""
    cpu = [r["cpu_s"] / r["n"] * 1e6 for r in records]
    paired = (
        [
            (mine["cpu_s"] / mine["n"]) / (floor["cpu_s"] / floor["n"])
            for mine, floor in zip(records, raw, strict=True)
        ]
        if raw is not None
        else [math.nan]
    )
    return Summary(
        client=client,
        n=records[0]["n"],
        lookups_per_s=_median([r["n"] / r["wall_s"] for r in records]),
        cpu_us_per_lookup=_median(cpu),
        cpu_us_min=min(cpu),
        cpu_us_max=max(cpu),
        peak_rss_mib=_median([r["peak_rss_kib"] / 1024 for r in records]),
        errors=max(r["errors"] for r in records),
        runs=len(records),
        cpu_vs_raw_paired=_median(paired),
        cpu_vs_raw_min=min(paired),
        cpu_vs_raw_max=max(paired),
    )


def run_client(
    name: str,
    *,
    n: int,
    concurrency: int,
    url: str,
    tls: Tls | None = None,
    options: Sequence[str] = (),
    strict: bool = True,
) -> dict[str, Any]:
    """Run one client process and return its JSON record.

    Args:
        name: A client of ``clients.py``.
        n: Lookups in the measured batch.
        concurrency: Requests in flight at once.
        url: The server's root URL.
        tls: The server's certificate, trusted through ``SSL_CERT_FILE`` in the
            child's environment: every client's default SSL context reads it, so the
            clients verify the server the same way and none is configured by hand.
        options: More arguments for ``clients.py`` (``--loop``, ``--max-connections``).
        strict: Raise when a lookup failed; when False, failed lookups are part of the
            record (``errors``, ``first_error``), as a knob's effect.

    Raises:
        BenchmarkError: The process failed, or not every lookup succeeded.
    """
    command = [
        sys.executable,
        str(CLIENTS_SCRIPT),
        name,
        "--n",
        str(n),
        "--concurrency",
        str(concurrency),
        "--url",
        url,
        "--key",
        API_KEY,
        *options,
    ]
    env: Mapping[str, str] | None = None
    if tls is not None:
        env = {**os.environ, "SSL_CERT_FILE": str(tls.cert)}
    started = time.monotonic()
    # The harness only waits here, so the child's CPU is the only client CPU spent.
    done = subprocess.run(  # noqa: S603 -- our own script, arguments we built
        command, capture_output=True, text=True, timeout=_CHILD_TIMEOUT, check=False, env=env
    )
    if done.returncode != 0:
        msg = f"client {name} (n={n}) exited with {done.returncode}:\n{done.stderr.strip()}"
        raise BenchmarkError(msg)
    lines = done.stdout.strip().splitlines()
    if not lines:
        msg = f"client {name} (n={n}) printed no result:\n{done.stderr.strip()}"
        raise BenchmarkError(msg)
    record: dict[str, Any] = json.loads(lines[-1])
    record["process_s"] = time.monotonic() - started
    _progress(
        f"  {' '.join([name, *options]):<9} n={n:<8} {record['wall_s']:7.2f} s  "
        f"{record['cpu_s'] / n * 1e6:7.1f} µs CPU/lookup  "
        f"{record['peak_rss_kib'] / 1024:7.1f} MiB  errors={record['errors']}"
    )
    if strict and (record["lookups"] != n or record["errors"]):
        msg = (
            f"client {name} (n={n}) got {record['lookups']} successful lookups and "
            f"{record['errors']} errors; first error: {record['first_error']}"
        )
        raise BenchmarkError(msg)
    return record


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _sdk_revision() -> str:
    """The commit the SDK was measured at, ``+dirty`` when kodmobi_async/ has edits."""
    git = ["git", "-C", str(HERE.parent)]
    try:
        head = subprocess.run(  # noqa: S603 -- fixed arguments
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 -- fixed arguments
            [*git, "status", "--porcelain", "--", "kodmobi_async"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


@contextlib.contextmanager
def start_server(
    kind: str, session_count: int, *, unique: bool, tls: Tls | None = None
) -> Iterator[Server]:
    """Start the requested server; ``auto`` prefers nginx and falls back to the fake.

    Args:
        kind: ``auto``, ``nginx`` or ``fake``.
        session_count: Ids the fake must know (the largest batch).
        unique: A different body per id (the session id echoed into it).
        tls: Serve https with this certificate; plain http when None.

    Yields:
        The running server.

    Raises:
        BenchmarkError: ``nginx`` was asked for and is not installed.
    """
    if kind in ("auto", "nginx"):
        nginx = find_nginx()
        if nginx is not None:
            with run_nginx(nginx, unique=unique, tls=tls) as server:
                yield server
            return
        if kind == "nginx":
            msg = f"nginx is not installed; install it with: {NGINX_INSTALL_HINT}"
            raise BenchmarkError(msg)
        _progress(
            "nginx is not installed, so the server is FakeKodMobi, a Python server that "
            "shares the machine's cores with the client: numbers are only indicative.\n"
            f"For the real benchmark install nginx: {NGINX_INSTALL_HINT}"
        )
    with run_fake(session_count, unique=unique, tls=tls) as server:
        yield server


@contextlib.contextmanager
def certificate(enabled: bool) -> Iterator[Tls | None]:
    """A throwaway certificate for 127.0.0.1 in a temporary directory (``--tls``), or
    None; the directory and the key are deleted when the block ends.

    Raises:
        BenchmarkError: openssl is missing or failed.
    """
    if not enabled:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="kodmobi-bench-tls-") as directory:
        try:
            tls = make_certificate(Path(directory))
        except RuntimeError as error:
            raise BenchmarkError(str(error)) from None
        yield tls


@contextlib.contextmanager
def serve(
    kind: str, session_count: int, *, payload: str, tls: bool
) -> Iterator[tuple[Server, Tls | None]]:
    """The server the command line asks for, with its certificate when ``tls``.

    Args:
        kind: ``auto``, ``nginx`` or ``fake`` (``--server``).
        session_count: Ids the fake must know (the largest batch).
        payload: ``unique`` or ``same`` (``--payload``).
        tls: Serve https with a throwaway certificate (``--tls``).

    Yields:
        The running server and the certificate (None over http).

    Raises:
        BenchmarkError: The server or the certificate could not be had.
    """
    with (
        certificate(tls) as cert,
        start_server(kind, session_count, unique=payload == "unique", tls=cert) as server,
    ):
        yield server, cert


# -- report --------------------------------------------------------------------------


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align ``rows`` under ``header``: the first column left, the others right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        # The first column (a name) is left-aligned, the numbers right-aligned.
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def compare_table(summaries: dict[str, Summary]) -> str:
    """The main table: each client's numbers and its ratios to raw aiohttp."""
    raw = summaries["raw"]
    rows = [
        [
            s.client,
            f"{s.lookups_per_s:,.0f}",
            f"{s.cpu_us_per_lookup:.1f}",
            f"{s.cpu_us_min:.0f}-{s.cpu_us_max:.0f}",
            f"{s.peak_rss_mib:.1f}",
            f"{s.lookups_per_s / raw.lookups_per_s:.2f}",
            f"{s.cpu_us_per_lookup / raw.cpu_us_per_lookup:.2f}",
            f"{s.cpu_vs_raw_paired:.2f} ({s.cpu_vs_raw_min:.2f}-{s.cpu_vs_raw_max:.2f})",
        ]
        for s in summaries.values()
    ]
    header = [
        "client",
        "lookups/s",
        "CPU µs/lookup",
        "CPU range",
        "peak RSS MiB",
        "lookups/s vs raw",
        "CPU vs raw",
        "CPU vs raw, paired",
    ]
    return text_table(header, rows)


def memory_table(memory: dict[str, list[dict[str, Any]]]) -> str:
    """Peak RSS of each SDK batch API at each N, and its ratio to the smallest N."""
    rows = []
    for name, records in memory.items():
        base = records[0]["peak_rss_kib"]
        for record in records:
            rows.append(
                [
                    MEMORY_APIS[name],
                    f"{record['n']:,}",
                    f"{record['n'] / record['wall_s']:,.0f}",
                    f"{record['cpu_s'] / record['n'] * 1e6:.1f}",
                    f"{record['peak_rss_kib'] / 1024:.1f}",
                    f"{record['peak_rss_kib'] / base:.2f}",
                ]
            )
    header = ["API", "N", "lookups/s", "CPU µs/lookup", "peak RSS MiB", f"RSS vs N={rows[0][1]}"]
    return text_table(header, rows)


def check_targets(
    summaries: dict[str, Summary], memory: dict[str, list[dict[str, Any]]]
) -> list[tuple[bool, str]]:
    """Each target of issues 3 and 11 with whether it is met and the numbers behind it."""
    raw, sdk = summaries["raw"], summaries["sdk"]
    results = []
    # Judged on the paired ratio, which the drift of a shared machine's load moves least.
    cpu = sdk.cpu_vs_raw_paired
    for bound, label in ((CPU_TARGET, "target"), (CPU_AIM, "aim")):
        results.append(
            (
                cpu <= bound,
                f"sdk CPU per lookup <= {bound:g} x raw aiohttp ({label}): median of "
                f"{sdk.runs} paired rounds {cpu:.2f} x (rounds {sdk.cpu_vs_raw_min:.2f}-"
                f"{sdk.cpu_vs_raw_max:.2f}; medians {sdk.cpu_us_per_lookup:.1f} vs "
                f"{raw.cpu_us_per_lookup:.1f} µs)",
            )
        )
    for other in ("naive", "httpx"):
        if other not in summaries:
            continue
        speed = sdk.lookups_per_s / summaries[other].lookups_per_s
        results.append(
            (
                speed >= SPEED_TARGET,
                f"sdk lookups/s >= {SPEED_TARGET:g} x {other}: {sdk.lookups_per_s:,.0f} vs "
                f"{summaries[other].lookups_per_s:,.0f} = {speed:.2f} x",
            )
        )
    for name, records in memory.items():
        if len(records) < 2:
            continue
        first, last = records[0], records[-1]
        ratio = last["peak_rss_kib"] / first["peak_rss_kib"]
        note = " (holds every outcome: grows with N by design)" if name == "sdk" else ""
        results.append(
            (
                ratio <= MEMORY_TARGET,
                f"{MEMORY_APIS[name]} peak RSS at N={last['n']:,} <= {MEMORY_TARGET:g} x N="
                f"{first['n']:,}: {last['peak_rss_kib'] / 1024:.1f} vs "
                f"{first['peak_rss_kib'] / 1024:.1f} MiB = {ratio:.2f} x{note}",
            )
        )
    return results


# -- main ----------------------------------------------------------------------------


def exit_on_signal(signum: int, _frame: object) -> None:
    """A signal handler that exits by raising ``SystemExit``, so ``with`` blocks unwind."""
    raise SystemExit(128 + signum)


def _ns(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if any(v < 1 for v in values):
        msg = f"every N must be >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"expected an integer >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` overrides the sizes with tiny ones."""
    parser = argparse.ArgumentParser(
        description="Benchmark kodmobi_async batch lookups against raw aiohttp, httpx and "
        "a naive client.",
    )
    parser.add_argument("--n", type=_positive, default=20_000, help="lookups per client run")
    parser.add_argument("--concurrency", type=_positive, default=64)
    parser.add_argument("--rounds", type=_positive, default=3, help="interleaved rounds")
    parser.add_argument(
        "--memory-ns",
        type=_ns,
        default=(100_000, 1_000_000),
        help="batch sizes for the memory table, besides --n (empty string: skip it)",
    )
    parser.add_argument("--server", choices=["auto", "nginx", "fake"], default="auto")
    parser.add_argument(
        "--payload",
        choices=["same", "unique"],
        default="unique",
        help="unique (default): the server echoes the id into each body, so no client "
        "can reuse a decoded answer; same: one canned body for every id",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve https (TLS 1.3) with a throwaway self-signed certificate (needs openssl)",
    )
    parser.add_argument(
        "--clients",
        default=",".join(COMPARED),
        help="comma-separated subset of " + ",".join(COMPARED) + " (raw and sdk are required)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n = _QUICK["n"]
        args.rounds = _QUICK["rounds"]
        args.memory_ns = _QUICK["memory_ns"]
    args.clients = tuple(c.strip() for c in args.clients.split(",") if c.strip())
    unknown = set(args.clients) - set(COMPARED)
    if unknown or not {"raw", "sdk"} <= set(args.clients):
        parser.error(f"--clients must include raw and sdk, from {', '.join(COMPARED)}")
    if args.json is None:
        args.json = RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; 1 when a client failed (or a target missed
    with ``--check-targets``)."""
    args = parse_args(argv)
    # A SIGTERM (nox or CI giving up) must still unwind the `with` blocks that stop the
    # server and the running client, or nginx would outlive the harness.
    signal.signal(signal.SIGTERM, exit_on_signal)
    n, concurrency = args.n, args.concurrency
    memory_ns = [n, *sorted(m for m in set(args.memory_ns) if m != n)]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    revision = _sdk_revision()
    session_count = max([*memory_ns, 2 * concurrency])

    records: dict[str, list[dict[str, Any]]] = {c: [] for c in args.clients}
    memory: dict[str, list[dict[str, Any]]] = {name: [] for name in MEMORY_APIS}
    try:
        with serve(args.server, session_count, payload=args.payload, tls=args.tls) as (
            server,
            tls,
        ):
            used = server
            _progress(f"server: {server.description} at {server.url}")
            for index in range(args.rounds):
                # Rotate the order so no client always runs first (or right after another).
                shift = index % len(args.clients)
                order = args.clients[shift:] + args.clients[:shift]
                _progress(f"round {index + 1}/{args.rounds}: {', '.join(order)}")
                for client in order:
                    records[client].append(
                        run_client(client, n=n, concurrency=concurrency, url=server.url, tls=tls)
                    )
            if len(memory_ns) > 1:
                _progress("memory: " + ", ".join(f"{m:,}" for m in memory_ns))
                for name in MEMORY_APIS:
                    for size in memory_ns:
                        memory[name].append(
                            run_client(
                                name, n=size, concurrency=concurrency, url=server.url, tls=tls
                            )
                        )
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    memory = {name: recs for name, recs in memory.items() if recs}

    summaries = {
        client: summarize(client, recs, records["raw"]) for client, recs in records.items()
    }
    targets = check_targets(summaries, memory)
    elapsed = datetime.datetime.now(datetime.timezone.utc) - started

    out = sys.stdout
    print(
        f"kodmobi_async batch benchmark, {started:%Y-%m-%d %H:%M} UTC, "
        f"kodmobi_async {revision}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {load_before} -> {_load()}",
        file=out,
    )
    print(f"server: {used.kind}: {used.description}", file=out)
    if args.tls:
        print(
            "  self-signed certificate for 127.0.0.1 made for this run; every client trusts "
            "it through SSL_CERT_FILE (Python's default SSL context)",
            file=out,
        )
    if used.kind == "fake":
        print(
            "  (fallback: the fake is Python and may be the bottleneck; "
            f"install nginx for real numbers: {NGINX_INSTALL_HINT})",
            file=out,
        )
    print(
        f"N={n:,} lookups per run, concurrency {concurrency}, median of {args.rounds} "
        "interleaved round(s), each client in its own process",
        file=out,
    )
    print(file=out)
    print(compare_table(summaries), file=out)
    if memory:
        print(file=out)
        print(
            f"Peak RSS as the batch grows (ids from a generator, concurrency {concurrency}):",
            file=out,
        )
        print(memory_table(memory), file=out)
    print(file=out)
    print("Targets (issues 3 and 11):", file=out)
    for met, text in targets:
        print(f"  {'PASS' if met else 'MISS'}  {text}", file=out)
    print(f"\ntotal time {elapsed.total_seconds():.0f} s", file=out)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "python": platform.python_version(),
                "sdk_revision": revision,
                "cpus": os.cpu_count(),
                "server": attrs.asdict(used),
                "n": n,
                "concurrency": concurrency,
                "rounds": args.rounds,
                "payload": args.payload,
                "tls": args.tls,
                "summaries": {c: attrs.asdict(s) for c, s in summaries.items()},
                "runs": records,
                "memory": memory,
                "targets": [{"met": met, "text": text} for met, text in targets],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {args.json}", file=out)
    if args.check_targets and not all(met for met, _ in targets):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
