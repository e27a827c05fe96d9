"""The soak run's report: what a run observed, how it is judged, and how it is printed.

``benchmarks/soak.py`` runs the app, the upstream and the load, and hands what it saw to
:func:`build_report`, which applies the checks below; :func:`print_report` prints the
result as tables, and ``--json`` writes the same dictionary.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from typing import Any

import attrs

# Descriptors are compared at two quiet checkpoints, after the warm-up and after the
# load, when no connection is open on either side of the app (the load generator has
# closed its pool and the upstream has stopped, closing the app's pooled connections):
# the count is then the app's own (listening socket, epoll, pipes), the same each time
# unless something leaked. Under load it swings by up to twice --concurrency as the two
# pools grow and shrink, which is why the checkpoints are quiet; a margin of 2 allows a
# descriptor the runtime opens once, lazily, and nothing per request.
FD_MARGIN = 2
# Memory, at the same checkpoints. It never moves between upstream outages, and rises in
# steps of up to 2 MiB during some of the early ones (the burst of failing calls takes
# the allocator to a new high-water mark) until it settles: 61.2 MiB at the start of a
# 300 s run, 65.4 MiB after its fourth restart at 40 s, 65.4 to 65.8 MiB through the
# next 17 restarts and 37,000 requests. The warm-up restarts the upstream a few times
# (WARMUP_RESTARTS in soak.py) to get most of the way there; a step or two may still come
# (+2.1 MiB in the worst 60 s run measured). The margin, 4 MiB, allows that, and is what
# a leak of 500 bytes a request (150 a second for 60 s) would add; longer runs see less.
RSS_MARGIN_KIB = 4 * 1024

# The app's logging: every record on stderr as "LEVEL logger: message", so that each line
# says who wrote it. Expected are uvicorn's start and stop (INFO), the SDK's "retrying"
# lines and the example's "kod.mobi lookup failed" line for each answer of 500 and above;
# they are counted. Anything else (a Python warning, "Exception ignored", an asyncio
# "Unclosed ..." error, a traceback) is reported, and fails the run.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {"uvicorn.error": {"level": "INFO"}},
}
UVICORN_LINE = "INFO uvicorn.error: "
SDK_LINE = "WARNING kodmobi_async: "
APP_LINE = "WARNING fastapi_app: kod.mobi lookup failed: "
CLEAN_SHUTDOWN = UVICORN_LINE + "Application shutdown complete."
WARNING_PATTERN = re.compile(r"warning|unclosed|exception ignored|traceback|error", re.IGNORECASE)


@attrs.frozen
class Sample:
    """The app process's footprint at one moment.

    Attributes:
        at: Seconds since the measured load started (negative before it).
        rss_kib: Resident memory (``VmRSS``), KiB.
        fds: Open file descriptors (entries of ``/proc/<pid>/fd``).
        threads: Threads (``Threads``): the event loop's, and the worker threads that
            run the app's sync dependency.
    """

    at: float
    rss_kib: int
    fds: int
    threads: int


@attrs.define
class Tally:
    """What the load generator saw, counted during the measured window only.

    Attributes:
        sent: Requests sent.
        skipped: Ticks of the schedule when ``--concurrency`` requests were in flight.
        statuses: Answers by HTTP status.
        problems: Problem codes in answers (for a batch, one per id that failed).
        transport_errors: Requests that got no HTTP answer, by exception type.
        latencies: Seconds from send to the end of the body, per answered request.
    """

    sent: int = 0
    skipped: int = 0
    statuses: Counter[int] = attrs.Factory(Counter)
    problems: Counter[str] = attrs.Factory(Counter)
    transport_errors: Counter[str] = attrs.Factory(Counter)
    latencies: list[float] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class Settings:
    """One soak run's parameters (see ``--help``)."""

    duration: float
    warmup: float
    rate: float
    concurrency: int
    restarts: int
    fault_rate: float
    seed: int
    warmup_restarts: int
    judge_memory: bool


@attrs.frozen(kw_only=True)
class Observed:
    """Everything a run saw, for :func:`build_report`.

    Attributes:
        measured: Seconds of the measured window, drain included.
        tally: What the load generator saw.
        checkpoints: The app's footprint at the quiet checkpoints, before and after.
        samples: The app's footprint every second under load.
        restarts: One line per upstream restart.
        app_exit: The app's exit status after SIGTERM.
        app_lines: Everything the app wrote to stderr and stdout.
        measured_lines: What it wrote from the first checkpoint on.
        upstream_requests: Requests the upstream served, over all its lives.
        faults: Faults the upstream scripted, by kind.
    """

    measured: float
    tally: Tally
    checkpoints: tuple[Sample, Sample]
    samples: list[Sample]
    restarts: list[str]
    app_exit: int | None
    app_lines: list[str]
    measured_lines: list[str]
    upstream_requests: int
    faults: Counter[str]


def _percentile_ms(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] * 1000, 1)


# What the SDK's messages say about every call alike, cut so that lines group by kind.
_SAME_IN_EVERY_LINE = (
    (re.compile(r"^retrying GET /session/channels session=\S+ in [\d.]+ s: "), ""),
    (re.compile(r"^GET /session/channels session=\S+ "), ""),
    (re.compile(r" (from|answer) kod\.mobi for GET /session/channels"), ""),
    (re.compile(r" \(GET /session/channels\)"), ""),
    (re.compile(r"GET /session/channels "), ""),
    (re.compile(r"127\.0\.0\.1:\d+|\('127\.0\.0\.1', \d+\)"), "upstream"),
    (re.compile(r"\d+\.\d+ s"), "N s"),
)


def _grouped(lines: list[str], prefix: str) -> dict[str, int]:
    def shape(line: str) -> str:
        text = line.removeprefix(prefix)
        for pattern, replacement in _SAME_IN_EVERY_LINE:
            text = pattern.sub(replacement, text)
        return text

    return dict(Counter(shape(line) for line in lines if line.startswith(prefix)).most_common())


def _failures(settings: Settings, seen: Observed, other: list[str], warnings: int) -> list[str]:
    first, last = seen.checkpoints
    tally = seen.tally
    failures = []
    if last.fds - first.fds > FD_MARGIN:
        failures.append(f"open descriptors grew by {last.fds - first.fds} (margin {FD_MARGIN})")
    if settings.judge_memory and last.rss_kib - first.rss_kib > RSS_MARGIN_KIB:
        grown = (last.rss_kib - first.rss_kib) / 1024
        failures.append(f"RSS grew by {grown:.1f} MiB (margin {RSS_MARGIN_KIB / 1024:g} MiB)")
    if other:
        failures.append(f"the app wrote {len(other)} unexpected lines ({warnings} warnings)")
    if CLEAN_SHUTDOWN not in seen.app_lines:
        failures.append("the app did not log a complete lifespan shutdown")
    if tally.statuses[500]:
        failures.append(f"the app answered 500 {tally.statuses[500]} times (an unhandled error)")
    if tally.transport_errors:
        failures.append(f"{sum(tally.transport_errors.values())} requests got no answer")
    # uvicorn re-raises the signal it stopped on, after a graceful shutdown.
    if seen.app_exit not in (0, -signal.SIGTERM):
        failures.append(f"the app exited with status {seen.app_exit} after SIGTERM")
    if not tally.sent:
        failures.append("no request was sent")
    return failures


def build_report(settings: Settings, seen: Observed) -> dict[str, Any]:
    """Put a run's observations together and judge them.

    Args:
        settings: The run's parameters.
        seen: What the run observed.

    Returns:
        The report: figures, and ``failures`` (empty when the run passed).
    """
    expected = (UVICORN_LINE, SDK_LINE, APP_LINE)
    other = [line for line in seen.app_lines if not line.startswith(expected)]
    warnings = sum(1 for line in other if WARNING_PATTERN.search(line))
    tally, faults = seen.tally, seen.faults
    first, last = seen.checkpoints
    under_load = seen.samples or [first]
    return {
        "settings": attrs.asdict(settings),
        "measured_seconds": round(seen.measured, 1),
        "requests": {
            "sent": tally.sent,
            "per_second": round(tally.sent / seen.measured, 1),
            "skipped_at_concurrency_bound": tally.skipped,
            "by_status": {str(k): v for k, v in sorted(tally.statuses.items())},
            "problems_by_code": dict(tally.problems.most_common()),
            "no_answer": dict(tally.transport_errors),
            "latency_ms": {
                "p50": _percentile_ms(tally.latencies, 0.50),
                "p99": _percentile_ms(tally.latencies, 0.99),
                "max": _percentile_ms(tally.latencies, 1.0),
            },
        },
        "upstream": {
            "requests": seen.upstream_requests,
            "faults": dict(faults.most_common()),
            "fault_share": round(sum(faults.values()) / max(1, seen.upstream_requests), 4),
            "restarts": seen.restarts,
        },
        "app": {
            "start": attrs.asdict(first),
            "end": attrs.asdict(last),
            "under_load_fds": [min(s.fds for s in under_load), max(s.fds for s in under_load)],
            "under_load_threads": [
                min(s.threads for s in under_load),
                max(s.threads for s in under_load),
            ],
            "under_load_rss_kib": [
                min(s.rss_kib for s in under_load),
                max(s.rss_kib for s in under_load),
            ],
            "fd_margin": FD_MARGIN,
            "rss_margin_kib": RSS_MARGIN_KIB if settings.judge_memory else None,
            "samples": [attrs.asdict(s) for s in seen.samples],
            "exit_status": seen.app_exit,
            "sdk_errors_logged": _grouped(seen.measured_lines, APP_LINE),
            "sdk_retries_logged": _grouped(seen.measured_lines, SDK_LINE),
            "unexpected_lines": other[:50],
            "warnings": warnings,
        },
        "failures": _failures(settings, seen, other, warnings),
    }


def print_report(report: dict[str, Any]) -> None:
    """Print the report as tables.

    Args:
        report: What :func:`soak` returned.
    """
    s, r, u, a = report["settings"], report["requests"], report["upstream"], report["app"]
    print(
        f"soak: {report['measured_seconds']} s measured after {s['warmup']:g} s of warm-up, "
        f"{s['rate']:g} requests/s offered, at most {s['concurrency']} in flight, "
        f"{s['fault_rate']:.0%} upstream faults, upstream restarts: "
        f"{s['warmup_restarts']} in the warm-up, {s['restarts']} under load"
    )
    latency = r["latency_ms"]
    rows = [
        ("requests sent", f"{r['sent']:,} ({r['per_second']:g}/s)"),
        ("  not sent: concurrency bound", f"{r['skipped_at_concurrency_bound']:,}"),
        *((f"  answered {status}", f"{count:,}") for status, count in r["by_status"].items()),
        *((f"  no answer: {kind}", f"{count:,}") for kind, count in r["no_answer"].items()),
        (
            "latency p50 / p99 / max",
            f"{latency['p50']:g} / {latency['p99']:g} / {latency['max']:g} ms",
        ),
        ("upstream requests", f"{u['requests']:,}"),
        ("  faults scripted", f"{sum(u['faults'].values()):,} ({u['fault_share']:.2%})"),
        *((f"    {kind}", f"{count:,}") for kind, count in u["faults"].items()),
        *(("  restart at", line) for line in u["restarts"]),
    ]
    print()
    for label, value in rows:
        print(f"{label:<32} {value}")
    print()
    print("problem codes in answers (the app's mapping of SDK errors; per id in a batch)")
    for code, count in r["problems_by_code"].items():
        print(f"  {count:>7,}  {code}")
    for title, key in (
        ("SDK errors the app logged (one per answer of 500 and above)", "sdk_errors_logged"),
        ("retries the SDK logged", "sdk_retries_logged"),
    ):
        print(title)
        for message, count in a[key].items():
            print(f"  {count:>7,}  {message[:120]}")
    print()
    first, last = a["start"], a["end"]
    memory = a["rss_margin_kib"]
    print("app process     start    end  change  margin  under load (min-max)")
    print(
        f"  RSS MiB    {first['rss_kib'] / 1024:8.1f} {last['rss_kib'] / 1024:6.1f} "
        f"{(last['rss_kib'] - first['rss_kib']) / 1024:+7.1f} "
        f"{'not judged' if memory is None else f'{memory / 1024:7.1f}'}  "
        f"{a['under_load_rss_kib'][0] / 1024:.1f}-{a['under_load_rss_kib'][1] / 1024:.1f}"
    )
    print(
        f"  open fds   {first['fds']:8d} {last['fds']:6d} {last['fds'] - first['fds']:+7d} "
        f"{a['fd_margin']:7d}  {a['under_load_fds'][0]}-{a['under_load_fds'][1]}"
    )
    print(
        f"  threads    {first['threads']:8d} {last['threads']:6d} "
        f"{last['threads'] - first['threads']:+7d}       -  "
        f"{a['under_load_threads'][0]}-{a['under_load_threads'][1]}"
    )
    print(f"  exit status after SIGTERM: {a['exit_status']}")
    unexpected = a["unexpected_lines"]
    print(f"  stderr: {a['warnings']} warnings, {len(unexpected)} unexpected lines")
    for line in unexpected[:20]:
        print(f"    | {line}")
    print()
    for failure in report["failures"]:
        print(f"FAIL  {failure}")
    if not report["failures"]:
        memory = "and memory " if report["settings"]["judge_memory"] else ""
        print(
            f"PASS  flat descriptors {memory}at the checkpoints, no warnings, "
            "every request answered, clean stop"
        )
