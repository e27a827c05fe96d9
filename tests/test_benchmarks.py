"""The benchmark harness still runs end to end (numbers are not judged here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

sys.path.append(str(BENCHMARKS))

from servers import find_nginx, make_certificate, run_fake  # noqa: E402 -- on the path now


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- our interpreter on the repository's script
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def _client(name: str, url: str, cert_file: Path | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if cert_file is not None:
        env["SSL_CERT_FILE"] = str(cert_file)
    done = subprocess.run(  # noqa: S603 -- our interpreter on the repository's script
        [sys.executable, str(BENCHMARKS / "clients.py"), name, "--n", "5", "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    record: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return record


class TestBenchmarkHarness:
    def test_quick_run_prints_the_comparison_and_memory_tables(self, tmp_path: Path) -> None:
        results = tmp_path / "quick.json"
        done = _script("run.py", "--quick", "--json", str(results))
        assert done.returncode == 0, done.stdout + done.stderr
        for client in ("raw", "httpx", "naive", "sdk"):
            assert f"\n{client} " in done.stdout
        assert "iter_session_channels" in done.stdout
        assert "Targets (issues 3 and 11)" in done.stdout
        assert ", http, session id echoed in each body" in done.stdout
        report = json.loads(results.read_text(encoding="utf-8"))
        assert (report["payload"], report["tls"]) == ("unique", False)
        assert {s["errors"] for s in report["summaries"].values()} == {0}

    def test_quick_tls_run_serves_tls_1_3_to_every_client(self, tmp_path: Path) -> None:
        results = tmp_path / "quick-tls.json"
        done = _script(
            "run.py", "--quick", "--tls", "--clients", "raw,naive,sdk", "--json", str(results)
        )

        if shutil.which("openssl") is None:
            # Nothing to serve https with: the harness must say so and stop.
            assert done.returncode == 1
            assert "--tls needs the openssl command" in done.stderr
            return
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(results.read_text(encoding="utf-8"))
        # nginx where it is installed, else the fake behind its TLS relay.
        assert report["server"]["kind"] == ("nginx" if find_nginx() else "fake")
        assert report["server"]["url"].startswith("https://127.0.0.1:")
        assert "https (TLSv1.3 " in report["server"]["description"]
        assert "trusts it through SSL_CERT_FILE" in done.stdout
        assert report["tls"] is True
        assert {s["errors"] for s in report["summaries"].values()} == {0}
        assert {r["lookups"] for runs in report["runs"].values() for r in runs} == {400}


class TestKnobs:
    def test_pool_and_json_sections_print_their_tables(self, tmp_path: Path) -> None:
        results = tmp_path / "knobs.json"
        done = _script(
            "knobs.py",
            "--n",
            "300",
            "--rounds",
            "1",
            "--sections",
            "json,pool",
            "--no-tls",
            "--json",
            str(results),
        )

        assert done.returncode == 0, done.stdout + done.stderr
        assert "json.loads " in done.stdout
        assert ("orjson.loads " in done.stdout) == (find_spec("orjson") is not None)
        report = json.loads(results.read_text(encoding="utf-8"))
        assert report["tls"] is False
        labels = [f"c={c} pool={m}" for c in (64, 256) for m in (16, 64, 100, 256)]
        assert list(report["pool"]) == labels
        for label in labels:
            assert f"\n{label} " in done.stdout
            assert [r["max_connections"] for r in report["pool"][label]] == [
                int(label.rsplit("=", 1)[1])
            ]


class TestOverhead:
    def test_prints_each_part_of_the_sdks_own_cost(self) -> None:
        done = _script("overhead.py", "--n", "200", "--repeat", "1")

        assert done.returncode == 0, done.stdout + done.stderr
        rows = {
            line.rsplit(None, 2)[0]: float(line.rsplit(None, 2)[1])
            for line in done.stdout.splitlines()[2:]
        }
        assert list(rows) == [
            "decode: json.loads",
            "decode: SDK (parse + structure)",
            "get_session_channels, one by one",
            "gather_session_channels, one batch",
        ]
        assert all(value > 0 for value in rows.values())


class TestImports:
    def test_prints_both_imports_and_their_ratio_with_a_warm_bytecode_cache(self) -> None:
        done = _script("imports.py", "--runs", "1")

        assert done.returncode == 0, done.stdout + done.stderr
        row = done.stdout.splitlines()[2].split()
        assert row[0] == "warm"
        python, aiohttp, sdk, ratio = (float(row[i]) for i in (1, 3, 5, 7))
        assert 0 < python < aiohttp
        assert ratio == pytest.approx(sdk / aiohttp, abs=0.01)


class TestTls:
    @pytest.mark.parametrize("client", ["raw", "httpx", "naive", "sdk"])
    def test_each_client_verifies_and_trusts_only_through_ssl_cert_file(
        self, client: str, tmp_path: Path
    ) -> None:
        if shutil.which("openssl") is None:
            with pytest.raises(RuntimeError, match="--tls needs the openssl command"):
                make_certificate(tmp_path)
            return
        tls = make_certificate(tmp_path)
        with run_fake(2 * 64 + 5, unique=True, tls=tls) as server:
            untrusted = _client(client, server.url, None)
            trusted = _client(client, server.url, tls.cert)

        assert (untrusted["lookups"], untrusted["errors"]) == (0, 5)
        assert "certif" in untrusted["first_error"].lower()
        assert (trusted["lookups"], trusted["errors"]) == (5, 0)

    def test_without_openssl_the_harness_says_what_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))  # no openssl on this PATH

        with pytest.raises(RuntimeError, match="apt-get install -y openssl"):
            make_certificate(tmp_path)


class TestRateLimitBenchmark:
    def test_quick_run_gives_every_id_an_outcome_in_each_scenario(self, tmp_path: Path) -> None:
        results = tmp_path / "ratelimit.json"
        done = _script("ratelimit.py", "--quick", "--json", str(results))

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
