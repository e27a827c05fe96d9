"""The soak run (issue 8): its harness runs end to end, and its checks fail when they must.

The full run (``nox -s soak``, 60 s of load) is too long for the suite; ``--quick`` runs
every part of it for a few seconds: uvicorn serving the FastAPI example, a faulty
upstream restarted once, the load, the quiet checkpoints and the report. The judging
itself is tested on made-up observations, so a leak or a warning is known to fail a run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Appended, not prepended: benchmarks/ holds generic names (run, servers, clients).
sys.path.append(str(ROOT / "benchmarks"))

from soak_report import (  # noqa: E402 -- the benchmarks are importable once on the path
    CLEAN_SHUTDOWN,
    FD_MARGIN,
    RSS_MARGIN_KIB,
    Observed,
    Sample,
    Settings,
    Tally,
    build_report,
)

SETTINGS = Settings(
    duration=60.0,
    warmup=20.0,
    rate=150.0,
    concurrency=32,
    restarts=4,
    fault_rate=0.01,
    seed=1,
    warmup_restarts=4,
    judge_memory=True,
)
START = Sample(at=0.0, rss_kib=60_000, fds=7, threads=3)


def observed(**changes: Any) -> Observed:
    """A clean run's observations, with ``changes`` applied."""
    clean = Observed(
        measured=60.0,
        tally=Tally(sent=9000, statuses=Counter({200: 8900, 503: 100}), latencies=[0.004]),
        checkpoints=(START, START),
        samples=[START],
        restarts=[],
        app_exit=-15,
        app_lines=[
            "INFO uvicorn.error: Application startup complete.",
            "WARNING kodmobi_async: retrying GET /session/channels session=01AB…CD in 0.2 s",
            "WARNING fastapi_app: kod.mobi lookup failed: could not get an answer",
            CLEAN_SHUTDOWN,
        ],
        measured_lines=[],
        upstream_requests=10_000,
        faults=Counter({"drop": 100}),
    )
    return attrs.evolve(clean, **changes)


class TestSoakChecks:
    def test_a_clean_run_passes(self) -> None:
        assert build_report(SETTINGS, observed())["failures"] == []

    def test_a_leaked_descriptor_beyond_the_margin_fails(self) -> None:
        end = attrs.evolve(START, fds=START.fds + FD_MARGIN + 1)

        failures = build_report(SETTINGS, observed(checkpoints=(START, end)))["failures"]

        assert failures == [f"open descriptors grew by {FD_MARGIN + 1} (margin {FD_MARGIN})"]

    def test_memory_beyond_the_margin_fails_unless_not_judged(self) -> None:
        end = attrs.evolve(START, rss_kib=START.rss_kib + RSS_MARGIN_KIB + 1024)
        seen = observed(checkpoints=(START, end))

        assert len(build_report(SETTINGS, seen)["failures"]) == 1
        quick = attrs.evolve(SETTINGS, judge_memory=False)
        assert build_report(quick, seen)["failures"] == []

    @pytest.mark.parametrize(
        "line",
        [
            "Exception ignored in: <function _SelectorTransport.__del__ at 0x7f>",
            "ResourceWarning: unclosed <socket.socket fd=12>",
            "ERROR asyncio: Unclosed client session",
            "/x.py:3: DeprecationWarning: old",
        ],
    )
    def test_a_warning_from_the_app_fails(self, line: str) -> None:
        seen = observed(app_lines=[*observed().app_lines, line])

        report = build_report(SETTINGS, seen)

        assert report["failures"] == ["the app wrote 1 unexpected lines (1 warnings)"]
        assert report["app"]["unexpected_lines"] == [line]

    def test_an_unhandled_error_an_unanswered_request_or_an_unclean_stop_fails(self) -> None:
        tally = Tally(sent=10, statuses=Counter({500: 1}), transport_errors=Counter(X=2))
        seen = observed(tally=tally, app_exit=1, app_lines=[])

        assert build_report(SETTINGS, seen)["failures"] == [
            "the app did not log a complete lifespan shutdown",
            "the app answered 500 1 times (an unhandled error)",
            "2 requests got no answer",
            "the app exited with status 1 after SIGTERM",
        ]


class TestSoakHarness:
    def test_quick_run_passes_with_flat_descriptors_and_a_clean_stop(self, tmp_path: Path) -> None:
        results = tmp_path / "soak.json"
        done = subprocess.run(  # noqa: S603 -- our interpreter on the repository's script
            [
                sys.executable,
                str(ROOT / "benchmarks" / "soak.py"),
                "--quick",
                "--json",
                str(results),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS" in done.stdout
        report = json.loads(results.read_text(encoding="utf-8"))
        assert report["failures"] == []
        requests, app = report["requests"], report["app"]
        assert requests["sent"] > 100
        # Every answer is one the example maps an outcome to: no 500, nothing dropped.
        assert set(requests["by_status"]) <= {"200", "404", "422", "502", "503", "504"}
        assert requests["by_status"]["200"] > 0
        assert requests["no_answer"] == {}
        # Unknown ids reach kod.mobi and come back as the app's 404 problem.
        assert requests["problems_by_code"]["session_not_found"] > 0
        assert len(report["upstream"]["restarts"]) == 1
        assert report["upstream"]["requests"] > 0
        assert app["end"]["fds"] == app["start"]["fds"]
        assert app["warnings"] == 0
        assert app["unexpected_lines"] == []
