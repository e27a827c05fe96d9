"""Tests of the ``kodmobi`` command line, run as a subprocess against a fake kod.mobi.

The fake serves from a background thread (the ``fake_in_thread`` fixture), so the test
can wait on the CLI process without blocking the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import kodmobi_async
from kodmobi_async import NotFoundError, RateLimitError
from kodmobi_async._cli import build_parser, main, parse_args
from kodmobi_async._cli.channels import _Printer
from kodmobi_async._cli_output import CHANNEL_FIELDS, CSV_FIELDS, ERROR_FIELDS
from kodmobi_async._demo import RATE_BURST, RATE_LIMIT, Expected, Plan, check, make_plan, run_demo
from kodmobi_async.testing import FakeKodMobi, Fault, RecordedRequest, new_session_id

from .conftest import SECRET_KEY

UNKNOWN_ID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
# Bounded, but generous for a loaded CI machine: each run normally takes about 0.5 s.
TIMEOUT = 60.0
ANSI_ESCAPE = re.compile(r"\x1b\[")
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli(
    *args: str,
    fake: FakeKodMobi | None = None,
    key: str | None = SECRET_KEY,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    python_args: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kodmobi_async ARGS`` with stdout and stderr piped.

    ``python_args`` replaces ``-m kodmobi_async`` (see :func:`without_rich`).
    """
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KODMOBI_") and name not in {"FORCE_COLOR", "TTY_COMPATIBLE"}
    }
    if fake is not None:
        environ["KODMOBI_BASE_URL"] = fake.url
    if key is not None:
        environ["KODMOBI_API_KEY"] = key
    environ.update(env or {})
    return subprocess.run(  # noqa: S603 -- our own interpreter and module, fixed arguments
        [sys.executable, *(python_args or ["-m", "kodmobi_async"]), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environ,
        timeout=TIMEOUT,
        check=False,
    )


def without_rich(*args: str) -> list[str]:
    """The arguments that run ``kodmobi ARGS`` where ``import rich`` fails, as without the extra."""
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from kodmobi_async._cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    return ["-c", code, *args]


def run_cli_without_rich(
    *args: str, fake: FakeKodMobi | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``kodmobi ARGS`` with stdout and stderr piped, as if rich were not installed."""
    return run_cli(*args, fake=fake, python_args=without_rich())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kodmobi: error: ")
    for word in words:
        assert word in lines[0]


def fake_environ(fake: FakeKodMobi) -> dict[str, str]:
    """This process's environment, pointing the CLI at ``fake`` with its key."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KODMOBI_")},
        "KODMOBI_API_KEY": SECRET_KEY,
        "KODMOBI_BASE_URL": fake.url,
    }


def requested_ids(fake: FakeKodMobi) -> list[str | None]:
    return [request.session_id for request in fake.requests]


@pytest.fixture
def sessions(fake_in_thread: FakeKodMobi) -> list[str]:
    return fake_in_thread.add_sessions(2)


class TestChannelsFormats:
    def test_json_is_one_array_of_channel_and_error_records(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        result = run_cli("channels", *sessions, UNKNOWN_ID, "--format", "json", fake=fake_in_thread)

        assert result.returncode == 1
        records = json.loads(result.stdout)
        channels = [r for r in records if "error" not in r]
        errors = [r for r in records if "error" in r]
        assert [r["session_id"] for r in channels] == [sessions[0]] * 4 + [sessions[1]] * 4
        assert all(tuple(r) == CHANNEL_FIELDS for r in channels)
        assert channels[1] == {
            "session_id": sessions[0],
            "name": "Telegram",
            "type": "telegram",
            "is_active": False,
            "timeout": 0,
            "image_url": "https://kod.mobi/static/channels/telegram.svg",
            "link": "https://t.me/kodmobi_bot",
        }
        assert errors == [
            {
                "session_id": UNKNOWN_ID,
                "error": errors[0]["error"],
                "status": 404,
                "sys_message": "ERROR_MESSAGE_NOT_FOUND",
            }
        ]
        assert tuple(errors[0]) == ERROR_FIELDS
        assert "Session not found" in errors[0]["error"]
        assert result.stderr == "kodmobi: 1 of 3 sessions failed (NotFoundError: 1)\n"

    def test_jsonl_is_one_record_per_line(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        result = run_cli("channels", sessions[0], "bogus", "--format", "jsonl", fake=fake_in_thread)

        assert result.returncode == 1
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(records) == 5
        assert {r["type"] for r in records[:4]} == {"whatsapp", "telegram", "sms", "email"}
        assert records[4]["session_id"] == "bogus"
        assert records[4]["status"] is None
        assert records[4]["sys_message"] is None
        assert "ULID" in records[4]["error"]
        # A malformed id is refused by the client: it never reaches the server.
        assert requested_ids(fake_in_thread) == [sessions[0]]

    def test_csv_has_every_column_and_plain_values(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        result = run_cli(
            "channels", sessions[0], UNKNOWN_ID, "--format", "csv", fake=fake_in_thread
        )

        assert result.returncode == 1
        reader = csv.DictReader(io.StringIO(result.stdout))
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == CSV_FIELDS
        assert [row["is_active"] for row in rows[:4]] == ["true", "false", "true", "true"]
        assert rows[0]["timeout"] == "0"
        assert rows[0]["error"] == ""
        assert rows[4]["session_id"] == UNKNOWN_ID
        assert rows[4]["status"] == "404"
        assert rows[4]["sys_message"] == "ERROR_MESSAGE_NOT_FOUND"
        assert rows[4]["name"] == ""

    def test_table_when_piped_has_no_colour_and_no_progress_bar(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        ids = fake_in_thread.add_sessions(60)

        result = run_cli("channels", *ids, "--format", "table", fake=fake_in_thread)

        assert result.returncode == 0
        assert result.stderr == ""
        assert not ANSI_ESCAPE.search(result.stdout)
        assert ids[59] in result.stdout
        assert "https://t.me/kodmobi_bot" in result.stdout
        # Unwrapped: one line per channel, plus the header and the section lines.
        assert len(result.stdout.splitlines()) == 2 + 60 * 4 + 59

    def test_without_ids_shows_the_project_channels(self, fake_in_thread: FakeKodMobi) -> None:
        result = run_cli("channels", "--format", "json", fake=fake_in_thread)

        assert result.returncode == 0
        records = json.loads(result.stdout)
        assert [r["type"] for r in records] == ["whatsapp", "telegram", "sms", "email"]
        assert all(r["session_id"] is None for r in records)
        assert requested_ids(fake_in_thread) == [None]

    def test_project_lookup_that_fails_is_an_error_record(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        fake_in_thread.script(Fault.status(500, sys_message="ERROR_INTERNAL"), times=None)

        result = run_cli("channels", "--timeout", "1", "--format", "jsonl", fake=fake_in_thread)

        assert result.returncode == 1
        (record,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert record["session_id"] is None
        assert record["status"] == 500
        assert record["sys_message"] == "ERROR_INTERNAL"
        assert result.stderr == "kodmobi: the project lookup failed\n"

    def test_transient_failures_are_retried_and_exit_0(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        fake_in_thread.script_session(sessions[0], Fault.status(503), times=1)
        fake_in_thread.script_session(sessions[1], Fault.drop(), times=1)

        result = run_cli("channels", *sessions, "--format", "json", fake=fake_in_thread)

        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 8
        assert result.stderr == ""

    def test_language_localizes_error_texts(self, fake_in_thread: FakeKodMobi) -> None:
        result = run_cli(
            "channels", UNKNOWN_ID, "--language", "ru", "--format", "json", fake=fake_in_thread
        )

        assert result.returncode == 1
        assert "Сессия не найдена" in json.loads(result.stdout)[0]["error"]

    def test_a_reader_that_goes_away_stops_it_quietly(self, fake_in_thread: FakeKodMobi) -> None:
        ids = fake_in_thread.add_sessions(500)
        environ = fake_environ(fake_in_thread)
        with subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "kodmobi_async", "channels", *ids, "--format", "jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        ) as process:
            assert process.stdout is not None
            process.stdout.readline()  # like `| head -1`
            process.stdout.close()
            _, stderr = process.communicate(timeout=TIMEOUT)

        assert process.returncode == 141
        assert stderr == b""


class TestChannelsInput:
    def test_ids_from_a_file_skip_blank_lines_and_comments(
        self, fake_in_thread: FakeKodMobi, sessions: list[str], tmp_path: Path
    ) -> None:
        path = tmp_path / "ids.txt"
        path.write_text(
            f"# sessions from the incident\n\n  {sessions[0]}  \n{sessions[1]} # retry\n\n",
            encoding="utf-8",
        )

        result = run_cli(
            "channels", "--from-file", str(path), "--format", "json", fake=fake_in_thread
        )

        assert result.returncode == 0, result.stderr
        assert sorted(requested_ids(fake_in_thread), key=str) == sorted(sessions)
        assert {r["session_id"] for r in json.loads(result.stdout)} == set(sessions)

    def test_ids_from_stdin_with_a_dash(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        text = f"{sessions[0]}\n# comment\n{UNKNOWN_ID}\n"

        result = run_cli(
            "channels", "--from-file", "-", "--format", "jsonl", fake=fake_in_thread, stdin=text
        )

        assert result.returncode == 1
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["session_id"] for r in records] == [sessions[0]] * 4 + [UNKNOWN_ID]

    def test_positional_ids_and_a_file_are_combined(
        self, fake_in_thread: FakeKodMobi, sessions: list[str], tmp_path: Path
    ) -> None:
        path = tmp_path / "ids.txt"
        path.write_text(f"{sessions[1]}\n", encoding="utf-8")

        result = run_cli(
            "channels",
            sessions[0],
            "--from-file",
            str(path),
            "--format",
            "csv",
            fake=fake_in_thread,
        )

        assert result.returncode == 0
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [row["session_id"] for row in rows] == [sessions[0]] * 4 + [sessions[1]] * 4

    def test_an_empty_file_looks_nothing_up(
        self, fake_in_thread: FakeKodMobi, tmp_path: Path
    ) -> None:
        path = tmp_path / "ids.txt"
        path.write_text("# nothing yet\n", encoding="utf-8")

        result = run_cli(
            "channels", "--from-file", str(path), "--format", "json", fake=fake_in_thread
        )

        assert result.returncode == 0
        assert json.loads(result.stdout) == []
        assert "no session ids" in result.stderr
        assert fake_in_thread.requests == []


class TestChannelsUsageErrors:
    def test_missing_key_is_one_line_and_exit_2(self, fake_in_thread: FakeKodMobi) -> None:
        result = run_cli("channels", UNKNOWN_ID, fake=fake_in_thread, key=None)

        assert_one_line_error(result, "KODMOBI_API_KEY", "--api-key")
        assert fake_in_thread.requests == []

    def test_unreadable_file_is_exit_2(self, fake_in_thread: FakeKodMobi, tmp_path: Path) -> None:
        missing = tmp_path / "missing.txt"

        result = run_cli("channels", "--from-file", str(missing), fake=fake_in_thread)

        assert_one_line_error(result, str(missing), "No such file")

    def test_a_file_that_is_not_text_is_exit_2(
        self, fake_in_thread: FakeKodMobi, tmp_path: Path
    ) -> None:
        path = tmp_path / "ids.bin"
        path.write_bytes(b"\xff\xfe\x00binary")

        result = run_cli("channels", "--from-file", str(path), fake=fake_in_thread)

        assert_one_line_error(result, str(path))

    def test_bad_base_url_is_exit_2(self) -> None:
        result = run_cli("channels", "--base-url", "ftp://example.com", UNKNOWN_ID)

        assert_one_line_error(result, "ftp://example.com")

    def test_plain_http_to_a_remote_host_is_refused_naming_the_flag(self) -> None:
        result = run_cli("channels", "--base-url", "http://api.kod.mobi", UNKNOWN_ID)

        assert_one_line_error(result, "--base-url uses plain http", "pass --allow-http")
        assert "allow_http" not in result.stderr

    def test_plain_http_from_the_environment_names_the_variable_and_the_flag(self) -> None:
        result = run_cli("channels", UNKNOWN_ID, env={"KODMOBI_BASE_URL": "http://api.kod.mobi"})

        assert_one_line_error(result, "KODMOBI_BASE_URL uses plain http", "pass --allow-http")

    def test_allow_http_accepts_plain_http_to_a_remote_host(self, tmp_path: Path) -> None:
        # A missing --from-file is reported after the client is built, before any
        # request: reaching it proves the URL was accepted, without touching the network.
        missing = tmp_path / "missing.txt"
        args = ["channels", "--base-url", "http://api.kod.mobi", "--from-file", str(missing)]

        refused = run_cli(*args)
        accepted = run_cli(*args, "--allow-http")

        assert_one_line_error(refused, "--allow-http")
        assert_one_line_error(accepted, str(missing), "No such file")

    def test_other_base_url_errors_keep_the_sdks_message(self) -> None:
        url = "http://api.kod.mobi/?token=x"
        with pytest.raises(kodmobi_async.ConfigurationError) as raised:
            kodmobi_async.KodMobiClient(api_key=SECRET_KEY, base_url=url)

        result = run_cli("channels", "--base-url", url, UNKNOWN_ID)

        assert_one_line_error(result, str(raised.value))
        assert "--allow-http" not in result.stderr

    def test_rejected_key_is_exit_2_without_output(self, fake_in_thread: FakeKodMobi) -> None:
        result = run_cli("channels", UNKNOWN_ID, fake=fake_in_thread, key="sk-some-other-key")

        assert_one_line_error(result, "401", "check --api-key")

    @pytest.mark.parametrize(
        "args",
        [
            ["channels", "--concurrency", "0"],
            ["channels", "--timeout", "-1"],
            ["channels", "--format", "xml"],
            ["channels", "--language", "de"],
            ["channels", "--no-such-flag"],
            ["demo", "--sessions", "many"],
            ["serve-fake", "--port", "70000"],
            ["channels", "--rate-limit", "0"],
            ["channels", "--rate-limit", "0.5"],
            ["channels", "--rate-limit", "fast"],
            ["channels", "--rate-limit", "inf"],
            ["serve-fake", "--rate-limit", "-1"],
            ["serve-fake", "--rate-limit", "nan"],
            ["serve-fake", "--rate-limit", "5", "--burst", "0.5"],
            ["serve-fake", "--rate-limit", "5", "--retry-after", "soon"],
            ["serve-fake", "--rate-limit", "5", "--retry-after", "-1"],
            [],
        ],
    )
    def test_bad_arguments_are_exit_2(self, args: list[str]) -> None:
        result = run_cli(*args)

        assert result.returncode == 2
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines()[-1].startswith("kodmobi")

    @pytest.mark.parametrize("option", [["--burst", "3"], ["--retry-after", "computed"]])
    def test_serve_fake_limit_options_need_a_rate_limit(self, option: list[str]) -> None:
        result = run_cli("serve-fake", *option, key=None)

        assert_one_line_error(result, f"{option[0]} needs --rate-limit")

    def test_the_table_without_rich_says_what_to_install_before_any_lookup(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        result = run_cli_without_rich("channels", UNKNOWN_ID, fake=fake_in_thread)

        assert_one_line_error(
            result, "--format table", "install kodmobi-async[cli]", "--format json, jsonl or csv"
        )
        assert fake_in_thread.requests == []


class TestChannelsRateLimit:
    def test_rate_limit_keeps_to_the_pace_without_a_429(self, fake_in_thread: FakeKodMobi) -> None:
        # A tight bucket: the 60 ids sent freely would meet 429s within the first 4.
        fake_in_thread.set_rate_limit(40, burst=4)
        ids = fake_in_thread.add_sessions(60)

        result = run_cli(
            "channels", *ids, "--rate-limit", "40", "--format", "jsonl", fake=fake_in_thread
        )

        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 240
        requests = fake_in_thread.requests
        assert [r.status for r in requests] == [200] * 60
        # 59 gaps of at least 1/40 s: the pace, not the server, spaced them.
        assert requests[-1].received_at - requests[0].received_at >= 59 / 40 * 0.95
        assert fake_in_thread.max_requests_in_window(1.0) <= 40 + 4

    def test_without_it_a_429_slows_the_batch_and_loses_no_id(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        fake_in_thread.set_rate_limit(100, burst=5)
        ids = fake_in_thread.add_sessions(150)

        result = run_cli("-v", "channels", *ids, "--format", "jsonl", fake=fake_in_thread)

        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 600
        assert 429 in {r.status for r in fake_in_thread.requests}
        # -v says when the client starts pacing itself, once, not per request.
        paced = re.findall(
            r"kodmobi_async\.cli: rate-limited: pacing at [\d,.]+ req/s", result.stderr
        )
        assert 1 <= len(paced) <= 3, result.stderr
        assert SECRET_KEY not in result.stderr


class TestWithoutRich:
    @pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
    def test_machine_formats_need_only_the_core_package(
        self, fake_in_thread: FakeKodMobi, sessions: list[str], fmt: str
    ) -> None:
        args = ("channels", *sessions, UNKNOWN_ID, "--format", fmt)

        result = run_cli_without_rich(*args, fake=fake_in_thread)

        assert result.returncode == 1, result.stderr
        assert result.stderr == "kodmobi: 1 of 3 sessions failed (NotFoundError: 1)\n"
        assert result.stdout == run_cli(*args, fake=fake_in_thread).stdout


class TestKeyNeverPrinted:
    def test_not_with_verbose_logging_retries_and_errors(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        for fmt in ("table", "json", "csv"):
            fake_in_thread.script_session(sessions[0], Fault.status(503), times=1)
            # A server that echoes the key back in its error text.
            fake_in_thread.script_session(
                sessions[1], Fault.status(400, error=f"key {SECRET_KEY} is not allowed"), times=1
            )

            result = run_cli(
                "-v", "channels", *sessions, UNKNOWN_ID, "--format", fmt, fake=fake_in_thread
            )

            assert result.returncode == 1
            assert "DEBUG" in result.stderr
            assert "retrying" in result.stderr
            assert SECRET_KEY not in result.stdout
            assert SECRET_KEY not in result.stderr
            assert "key *** is not allowed" in result.stdout

    def test_not_when_given_with_api_key_and_rejected(self, fake_in_thread: FakeKodMobi) -> None:
        wrong = "sk-WRONG-LEAKCHECK-0a1b2c3d"

        result = run_cli(
            "channels", "--api-key", wrong, "-v", UNKNOWN_ID, fake=fake_in_thread, key=None
        )

        assert result.returncode == 2
        assert wrong not in result.stdout + result.stderr

    def test_not_when_the_key_is_malformed(self) -> None:
        bad = "sk-LEAKCHECK with spaces "

        result = run_cli("-v", "channels", "--api-key", bad, UNKNOWN_ID, key=None)

        assert result.returncode == 2
        assert "LEAKCHECK" not in result.stdout + result.stderr

    def test_verbose_works_after_the_command_too(
        self, fake_in_thread: FakeKodMobi, sessions: list[str]
    ) -> None:
        result = run_cli("channels", sessions[0], "-v", "--format", "json", fake=fake_in_thread)

        assert result.returncode == 0
        assert "DEBUG" in result.stderr
        assert sessions[0] not in result.stderr  # session ids are masked in log lines
        assert SECRET_KEY not in result.stderr


# `python -m kodmobi_async` with Ctrl-C's default meaning restored. A shell that runs the
# test suite in the background hands it SIGINT ignored, and a child would inherit that
# and sleep through the test's Ctrl-C; a user at a terminal always has it delivered.
_AS_AT_A_TERMINAL = (
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'kodmobi'; runpy.run_module('kodmobi_async', run_name='__main__')",
)


class TestChannelsTable:
    """The table streams: rows are drawn as lookups end, in input order, each once."""

    def test_every_id_appears_once_in_input_order(self, fake_in_thread: FakeKodMobi) -> None:
        ids = fake_in_thread.add_sessions(150)  # far more than one screen
        asked = [*ids[:75], "not-a-session", ids[3], *ids[75:]]

        result = run_cli("channels", *asked, fake=fake_in_thread)

        assert result.returncode == 1
        sessions = [line.split(" ", 1)[0] for line in result.stdout.splitlines()[2:]]
        named = [s for s in sessions if s and s[0] not in "│─"]
        assert named == [*ids[:75], "not-a-session", *ids[75:]]
        # Four channel lines per session, one error line, a rule between sessions.
        assert len(result.stdout.splitlines()) == 2 + 150 * 4 + 1 + 150

    def test_first_rows_are_printed_while_the_last_lookup_is_held(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        ids = fake_in_thread.add_sessions(100)
        fake_in_thread.script_session(ids[-1], Fault.delay(TIMEOUT))
        environ = fake_environ(fake_in_thread)
        with subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [*_AS_AT_A_TERMINAL, "channels", *ids, "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            text=True,
        ) as process:
            assert process.stdout is not None
            try:
                # readline blocks until the CLI writes: the rows before the held id.
                lines = [process.stdout.readline() for _ in range(2 + 98 * 5)]
                assert process.poll() is None  # the held lookup has not ended
                assert lines[0].startswith("session")
                assert lines[2].startswith(ids[0])
                assert lines[-5].startswith(ids[97])
                assert all(ids[-1] not in line for line in lines)
            finally:
                process.send_signal(signal.SIGINT)
                process.communicate(timeout=TIMEOUT)
        assert process.returncode == 130


class TestTablePrinter:
    """The table's text goes out from a thread, in the order it was made."""

    async def test_text_added_later_never_overtakes_a_write_in_progress(self) -> None:
        written: list[str] = []
        header_started, release_header, rest_written = (threading.Event() for _ in range(3))

        def write(text: str) -> None:
            if text.startswith("header"):
                header_started.set()
                release_header.wait(TIMEOUT)
            written.append(text)
            if text.startswith("rest"):
                rest_written.set()

        printer = _Printer(write)
        await printer.__aenter__()
        printer.add("header\n")
        await asyncio.to_thread(header_started.wait, TIMEOUT)  # the ticker is writing it
        printer.add("rest\n")
        # Leaving cancels the ticker mid-write, then flushes what is left: the rest
        # must wait for the header's thread, so it cannot appear within this wait.
        closing = asyncio.create_task(printer.__aexit__(None, None, None))
        assert not await asyncio.to_thread(rest_written.wait, 0.2)
        release_header.set()
        await closing

        assert written == ["header\n", "rest\n"]

    async def test_a_cancellation_while_it_winds_down_is_kept(self) -> None:
        async def draw() -> None:
            async with _Printer(lambda _text: None):
                # Ctrl-C lands just as the block ends, while the printer stops its
                # ticker: the cancellation is the caller's, and must reach it.
                task = asyncio.current_task()
                assert task is not None
                asyncio.get_running_loop().call_soon(task.cancel)

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(draw())


class TestProgressBar:
    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_drawn_on_stderr_only_when_it_is_a_terminal(self, fake_in_thread: FakeKodMobi) -> None:
        ids = fake_in_thread.add_sessions(200)

        returncode, terminal, stdout = _run_with_terminal_stderr(
            ["-m", "kodmobi_async", "channels", *ids, "--format", "jsonl"], fake_in_thread
        )

        assert returncode == 0
        assert b"looking up" in terminal
        assert b"200/200" in terminal
        assert not ANSI_ESCAPE.search(stdout.decode())
        assert len(stdout.splitlines()) == 800

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_with_the_table_on_the_same_terminal_rows_print_above_it(
        self, fake_in_thread: FakeKodMobi
    ) -> None:
        ids = fake_in_thread.add_sessions(200)

        returncode, terminal = _run_on_terminal(
            ["-m", "kodmobi_async", "channels", *ids], fake_in_thread
        )

        assert returncode == 0, terminal
        assert b"200/200" in terminal
        text = ANSI_CODE.sub("", terminal.decode())
        found = [text.find(f"{session_id} \u2502 WhatsApp") for session_id in ids]
        assert all(at >= 0 for at in found)
        assert found == sorted(found)
        assert text.find("session") < found[0]

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_shows_the_pace_kod_mobis_429s_set(self, fake_in_thread: FakeKodMobi) -> None:
        fake_in_thread.set_rate_limit(100, burst=5)
        ids = fake_in_thread.add_sessions(150)

        returncode, terminal, stdout = _run_with_terminal_stderr(
            ["-m", "kodmobi_async", "channels", *ids, "--format", "jsonl"], fake_in_thread
        )

        assert returncode == 0, terminal
        assert len(stdout.splitlines()) == 600
        assert re.search(rb"rate-limited: pacing at [\d,.]+ req/s", terminal)

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_counts_down_a_pause_kod_mobi_asked_for(self, fake_in_thread: FakeKodMobi) -> None:
        ids = fake_in_thread.add_sessions(150)
        # A 503 with Retry-After pauses the whole client; the bar keeps redrawing.
        fake_in_thread.script_session(ids[10], Fault.status(503, retry_after=1), times=1)

        returncode, terminal, stdout = _run_with_terminal_stderr(
            ["-m", "kodmobi_async", "channels", *ids, "--format", "jsonl"], fake_in_thread
        )

        assert returncode == 0, terminal
        assert len(stdout.splitlines()) == 600
        assert b"paused by kod.mobi, resuming in 1 s" in terminal

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
    def test_left_out_on_a_terminal_without_rich(self, fake_in_thread: FakeKodMobi) -> None:
        ids = fake_in_thread.add_sessions(20)

        returncode, terminal, stdout = _run_with_terminal_stderr(
            without_rich("channels", *ids, "--format", "jsonl"), fake_in_thread
        )

        assert returncode == 0, terminal
        assert terminal == b""
        assert len(stdout.splitlines()) == 80


def _run_with_terminal_stderr(
    python_args: list[str], fake: FakeKodMobi
) -> tuple[int, bytes, bytes]:
    """Run our interpreter with stderr on a pseudo-terminal; return status, terminal, stdout."""
    import pty  # POSIX only

    master, slave = pty.openpty()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KODMOBI_")},
        "KODMOBI_API_KEY": SECRET_KEY,
        "KODMOBI_BASE_URL": fake.url,
        "TERM": "xterm",
    }
    with subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [sys.executable, *python_args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=environ,
    ) as process:
        os.close(slave)
        terminal = bytearray()
        # Drain the terminal as we go: a full pty buffer would block the CLI.
        reader = threading.Thread(target=_drain, args=(master, terminal), daemon=True)
        reader.start()
        stdout, _ = process.communicate(timeout=TIMEOUT)
        reader.join(TIMEOUT)
    os.close(master)
    return process.returncode, bytes(terminal), stdout


def _run_on_terminal(python_args: list[str], fake: FakeKodMobi) -> tuple[int, bytes]:
    """Run our interpreter with stdout and stderr on one pseudo-terminal."""
    import pty  # POSIX only

    master, slave = pty.openpty()
    environ = {**fake_environ(fake), "TERM": "xterm"}
    with subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [sys.executable, *python_args], stdout=slave, stderr=slave, env=environ
    ) as process:
        os.close(slave)
        terminal = bytearray()
        reader = threading.Thread(target=_drain, args=(master, terminal), daemon=True)
        reader.start()
        process.wait(timeout=TIMEOUT)
        reader.join(TIMEOUT)
    os.close(master)
    return process.returncode, bytes(terminal)


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the other side is closed
            return
        if not chunk:
            return
        into += chunk


class TestDemo:
    def test_with_faults_every_session_ends_as_scripted(self) -> None:
        result = run_cli("demo", "--sessions", "300", key=None)

        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""
        assert not ANSI_ESCAPE.search(result.stdout)
        out = result.stdout
        assert (
            "Scripted: 9 dropped connections, 12 x 503, 1 x 503 with Retry-After: 1, "
            "6 unknown ids\n"
            f"Rate limit: {RATE_LIMIT:g} requests/s per key, burst {RATE_BURST:g}, 429 with "
            "Retry-After: 1 above it\n"
        ) in out
        assert re.search(r"Looked up +300 in [\d.]+ s \([\d,]+ lookups/s\)", out)
        assert re.search(r"Answered +294\n", out)
        recovered = re.search(
            r"Retried, recovered (\d+) \(9 dropped, 13 x 503(?:, (\d+) after 429s only)?"
            r"(?:, (\d+) unscripted)?\)\n",
            out,
        )
        assert recovered is not None, out
        total, after_429, unscripted = (int(n or 0) for n in recovered.groups())
        assert total == 22 + after_429 + unscripted
        # Whether this machine sends 300 lookups faster than the limit depends on it; if
        # it does, every id that met a 429 still ended as planned.
        assert re.search(
            rf"Rate limit {RATE_LIMIT:g}/s +(\d+ x 429 on \d+ ids?(, paced at ~[\d,]+ req/s)?, "
            r"no id lost|no 429: this machine never sent faster)\n",
            out,
        )
        assert re.search(r"Errors by kind +NotFoundError 6\n", out)
        assert re.search(r"As scripted +yes, all 300\n", out)

    def test_without_faults_nothing_is_retried(self) -> None:
        result = run_cli("demo", "--sessions", "200", "--no-faults", key=None)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "Scripted: no faults, no rate limit\n" in result.stdout
        assert "Rate limit" not in result.stdout.split("\n", 2)[2]
        assert re.search(r"Retried, recovered 0\n", result.stdout)
        assert re.search(r"Errors by kind +none", result.stdout)
        assert re.search(r"Requests sent +200\n", result.stdout)


class TestDemoPlan:
    async def test_plan_scripts_faults_spread_over_the_batch(self) -> None:
        async with FakeKodMobi() as fake:
            plan = make_plan(fake, 300, faults=True)

            counts = plan.counts
            assert counts[Expected.DROP] == 9
            assert counts[Expected.UNAVAILABLE] == 12
            assert counts[Expected.PAUSED] == 1
            assert counts[Expected.NOT_FOUND] == 6
            assert list(plan.expected.values())[150] is Expected.PAUSED
            unknown = [sid for sid, kind in plan.expected.items() if kind is Expected.NOT_FOUND]
            with pytest.raises(KeyError):
                fake.channels(unknown[0])

    async def test_clean_run_reports_success_in_process(self) -> None:
        out = io.StringIO()

        passed = await run_demo(
            sessions=40, faults=False, concurrency=8, show_progress=False, out=out
        )

        assert passed
        assert "As scripted        yes, all 40\n" in out.getvalue()

    def test_check_reports_a_transient_fault_that_was_not_retried(self) -> None:
        sid = new_session_id()
        requests = [_recorded(sid, 200)]

        findings = check(Plan({sid: Expected.UNAVAILABLE}), {sid: []}, requests)

        assert findings.recovered == frozenset()
        assert findings.mismatches == {sid: "scripted 503, then answered, got 0 channel(s)"}

    def test_check_counts_recovered_ids_from_the_requests(self) -> None:
        sid = new_session_id()
        requests = [_recorded(sid, None), _recorded(sid, 200)]

        findings = check(Plan({sid: Expected.DROP}), {sid: []}, requests)

        assert findings.recovered == {sid}
        assert findings.mismatches == {}

    def test_check_lets_any_id_meet_429s_before_it_ends_as_planned(self) -> None:
        ok, dropped, unknown = new_session_id(), new_session_id(), new_session_id()
        requests = [
            _recorded(ok, 429),
            _recorded(dropped, 429),
            _recorded(unknown, 429),
            _recorded(ok, 429),
            _recorded(ok, 200),
            _recorded(dropped, None),
            _recorded(unknown, 404),
            _recorded(dropped, 200),
        ]
        plan = Plan({ok: Expected.OK, dropped: Expected.DROP, unknown: Expected.NOT_FOUND})
        not_found = NotFoundError("404", status=404)

        findings = check(plan, {ok: [], dropped: [], unknown: not_found}, requests)

        assert findings.mismatches == {}
        assert findings.recovered == {ok, dropped}
        assert findings.throttled == {ok, dropped, unknown}
        assert findings.throttled_requests == 4

    def test_check_does_not_take_a_429_for_the_scripted_fault(self) -> None:
        sid = new_session_id()
        requests = [_recorded(sid, 429), _recorded(sid, 200)]

        findings = check(Plan({sid: Expected.UNAVAILABLE}), {sid: []}, requests)

        assert findings.recovered == {sid}
        assert findings.mismatches == {sid: "scripted 503, then answered, got 0 channel(s)"}

    def test_check_reports_an_id_lost_to_the_rate_limit(self) -> None:
        sid = new_session_id()
        requests = [_recorded(sid, 429)] * 3
        lost = RateLimitError("kod.mobi answered 429", status=429)

        findings = check(Plan({sid: Expected.OK}), {sid: lost}, requests)

        assert findings.throttled == {sid}
        assert findings.mismatches == {
            sid: "scripted answered, got RateLimitError: kod.mobi answered 429"
        }


def _recorded(session_id: str, status: int | None) -> RecordedRequest:
    return RecordedRequest(
        method="GET",
        path="/session/channels",
        query={"session_id": session_id},
        headers={},
        session_id=session_id,
        status=status,
        fault=None,
        received_at=0.0,
    )


class TestServeFake:
    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_answers_requests_then_stops_cleanly_on_a_signal(
        self, signum: signal.Signals, tmp_path: Path
    ) -> None:
        ids_path = tmp_path / "ids.txt"
        with _serving("--sessions", "7", "--write-ids", str(ids_path)) as (process, banner):
            ids = ids_path.read_text(encoding="utf-8").split()
            assert len(ids) == 7
            assert ids[0] in banner
            assert "Rate limit" not in banner

            status, _, body = _get_channels(banner, ids[0])

            process.send_signal(signum)
            _, stderr = process.communicate(timeout=TIMEOUT)

        assert status == 200
        assert [c["type"] for c in json.loads(body)] == ["whatsapp", "telegram", "sms", "email"]
        assert process.returncode == 0
        assert "Traceback" not in stderr
        assert stderr == "kodmobi: fake kod.mobi stopped after 1 request(s)\n"

    @pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
    def test_rate_limit_answers_the_excess_429(self) -> None:
        args = ("--sessions", "1", "--rate-limit", "0.5", "--burst", "2", "--retry-after", "7")
        with _serving(*args) as (process, banner):
            assert "Rate limit: 0.5/s per key, burst 2, Retry-After 7\n" in banner
            session_id = re.search(r"Sessions: (\S+)", banner)
            assert session_id is not None

            answers = [_get_channels(banner, session_id.group(1)) for _ in range(3)]

            process.send_signal(signal.SIGINT)
            process.communicate(timeout=TIMEOUT)

        assert [status for status, _, _ in answers] == [200, 200, 429]
        _, headers, body = answers[2]
        assert headers["Retry-After"] == "7"
        assert json.loads(body)["sys_message"] == "ERROR_TOO_MANY_REQUESTS"
        assert process.returncode == 0

    def test_a_port_in_use_is_exit_2(self, fake_in_thread: FakeKodMobi) -> None:
        port = fake_in_thread.url.rsplit(":", 1)[1]

        result = run_cli("serve-fake", "--port", port, key=None)

        assert_one_line_error(result, f"127.0.0.1:{port}")


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``kodmobi serve-fake --port 0 ARGS``; yield it and its banner, killed if left."""
    with subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "kodmobi_async", "serve-fake", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        watchdog = threading.Timer(TIMEOUT, process.kill)
        watchdog.start()
        try:
            yield process, "".join(_lines_until(process, "curl "))
        finally:
            watchdog.cancel()


def _get_channels(banner: str, session_id: str) -> tuple[int, Mapping[str, str], bytes]:
    """GET a session's channels from the fake whose banner this is: status, headers, body."""
    url = re.search(r"KODMOBI_BASE_URL=(\S+)", banner)
    key = re.search(r"API key: +(\S+)", banner)
    assert url is not None
    assert key is not None
    request = urllib.request.Request(  # noqa: S310 -- a loopback http URL
        f"{url.group(1)}/session/channels?session_id={session_id}",
        headers={"x-api-key": key.group(1)},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def _lines_until(process: subprocess.Popen[str], marker: str) -> Iterator[str]:
    assert process.stdout is not None
    for line in process.stdout:
        yield line
        if marker in line:
            return
    pytest.fail("serve-fake exited before printing its banner")


class TestEntryPoints:
    def test_version(self) -> None:
        result = run_cli("--version", key=None)

        assert result.returncode == 0
        assert result.stdout == f"kodmobi (kodmobi-async) {kodmobi_async.__version__}\n"

    def test_help_lists_commands_and_examples(self) -> None:
        result = run_cli("--help", key=None)

        assert result.returncode == 0
        for text in ("channels", "demo", "serve-fake", "examples:", "kodmobi demo"):
            assert text in result.stdout

    def test_channels_help_documents_the_fields_and_exit_status(self) -> None:
        result = run_cli("channels", "--help", key=None)

        assert result.returncode == 0
        assert ",".join(CSV_FIELDS) in result.stdout
        assert "exit status:" in result.stdout

    def test_core_package_never_imports_rich(self) -> None:
        code = (
            "import sys, kodmobi_async, kodmobi_async.testing, kodmobi_async._cli\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'rich'], 'rich imported'"
        )
        result = subprocess.run(  # noqa: S603 -- our own interpreter, fixed arguments
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

        assert result.returncode == 0, result.stderr

    def test_main_parses_verbose_before_or_after_the_command(self) -> None:
        parser = build_parser()

        assert parser.parse_args(["-v", "demo"]).verbose is True
        assert parser.parse_args(["demo", "-v"]).verbose is True
        assert parser.parse_args(["demo"]).verbose is False
        assert parser.parse_args(["demo", "--no-faults"]).faults is False
        assert parser.parse_args(["demo"]).faults is True

    @pytest.mark.parametrize(
        ("argv", "token", "fmt"),
        [
            (["verify", "-hQ2x", "--format", "json"], "-hQ2x", "json"),
            (["verify", "--form", "csv", "--", "-x"], "-x", "csv"),
            (["verify", "--form=csv", "-x"], "-x", "csv"),
            (["-v", "verify", "--timeout", "3", "--xy"], "--xy", "table"),
            (["verify", "plain", "--format", "jsonl"], "plain", "jsonl"),
        ],
    )
    def test_a_verify_token_may_start_with_a_dash(
        self, argv: list[str], token: str, fmt: str
    ) -> None:
        args = parse_args(argv)

        assert (args.verify_token, args.format) == (token, fmt)

    @pytest.mark.parametrize(
        ("argv", "said"),
        [
            (["verify", "TOKEN", "--fromat", "json"], "unrecognized arguments: --fromat json"),
            (["verify", "-x", "--fromat=json"], "unrecognized arguments: --fromat=json"),
            # Only verify takes a dash first: a session id never starts with one.
            (["check", "-x", "01HZX3Q8V6W4T1N6B2C3D4E5F6", "1234"], "unrecognized arguments: -x"),
        ],
    )
    def test_a_mistyped_option_is_still_a_usage_error(
        self, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)

        assert exited.value.code == 2
        assert said in capsys.readouterr().err

    def test_main_returns_the_exit_status_in_process(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(["channels", "--base-url", "ftp://x", "--api-key", SECRET_KEY])

        assert status == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("kodmobi: error: ")
        assert SECRET_KEY not in captured.err
