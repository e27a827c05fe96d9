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
