"""The benchmark harness still runs end to end (numbers are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class TestBenchmarkHarness:
    def test_quick_run_prints_the_comparison_and_memory_tables(self, tmp_path: Path) -> None:
        results = tmp_path / "quick.json"
        done = subprocess.run(  # noqa: S603 -- our interpreter on the repository's script
            [
                sys.executable,
                str(ROOT / "benchmarks" / "run.py"),
                "--quick",
                "--json",
                str(results),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for client in ("raw", "httpx", "naive", "sdk"):
            assert f"\n{client} " in done.stdout
        assert "iter_session_channels" in done.stdout
        assert "Targets (issue 3)" in done.stdout
        summaries = json.loads(results.read_text(encoding="utf-8"))["summaries"]
        assert {s["errors"] for s in summaries.values()} == {0}


class TestRateLimitBenchmark:
    def test_quick_run_gives_every_id_an_outcome_in_each_scenario(self, tmp_path: Path) -> None:
        results = tmp_path / "ratelimit.json"
        done = subprocess.run(  # noqa: S603 -- our interpreter on the repository's script
            [
                sys.executable,
                str(ROOT / "benchmarks" / "ratelimit.py"),
                "--quick",
                "--json",
                str(results),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=ROOT,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        header, rule, *lines = done.stdout.splitlines()[1:]
        for column in ("scenario", "ideal s", "wall/ideal", "req/N", "429s", "answered"):
            assert column in header
        assert set(rule) == {"-", " "}
        assert [line[:3] for line in lines] == ["(a)", "(b)", "(c)", "(d)"]
        rows = json.loads(results.read_text(encoding="utf-8"))["rows"]
        # The bucket admits its burst at once, then the rate: (N - burst) / R.
        assert [round(row["ideal_wall_s"], 3) for row in rows] == [0.9, 0.9, 2.1, 0.9]
        for row, line in zip(rows, lines, strict=True):
            if row["skipped"] is not None:
                assert row["skipped"] == "n/a (client has no rate_limit)"
                assert row["skipped"] in line
                continue
            assert row["outcomes"] == row["n"]
            assert row["answered"] + sum(row["errors"].values()) == row["n"]
            assert row["requests"] >= row["n"]
            assert ("PASS" in line) == row["met"]
            assert ("MISS" in line) != row["met"]
