"""Tests of the flow commands (create, send, check, verify, manual-send) and the demo's
flow, run as subprocesses against a fake kod.mobi in a thread."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from kodmobi_async._cli.demo import FLOW_PHONE, run_flow
from kodmobi_async._cli.objects import FAILURE_FIELDS
from kodmobi_async.testing import FakeKodMobi, Fault

from .conftest import SECRET_KEY
from .test_cli import ANSI_ESCAPE, assert_one_line_error, run_cli

# A secret key distinctive enough that finding it in any output means it leaked.
PROJECT_SECRET = "sk-SECRETLEAK-8e1f0c"
PHONE = "+15550001111"
UNKNOWN_ID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"


@pytest.fixture
def flow_fake() -> Iterator[FakeKodMobi]:
    """A fake with a distinctive public and secret key, serving from a thread."""
    with FakeKodMobi.in_thread(api_keys=[SECRET_KEY], secret_keys=[PROJECT_SECRET]) as fake:
        yield fake


def kodmobi(
    fake: FakeKodMobi, *args: str, secret: str | None = PROJECT_SECRET
) -> subprocess.CompletedProcess[str]:
    """Run ``kodmobi ARGS`` with the public key, and the secret key unless None."""
    env = {"KODMOBI_SECRET_KEY": secret} if secret is not None else {}
    return run_cli(*args, fake=fake, env=env)


def create(fake: FakeKodMobi, to: str = PHONE) -> str:
    result = kodmobi(fake, "create", to, "--format", "json")
    assert result.returncode == 0, result.stderr
    session_id: str = json.loads(result.stdout)["session_id"]
    return session_id


def verify_token(fake: FakeKodMobi, session_id: str) -> str:
    result = kodmobi(fake, "check", session_id, fake.code_for(session_id), "--format", "json")
    assert result.returncode == 0, result.stderr
    token: str = json.loads(result.stdout)["verify_token"]
    return token


def assert_refused(
    result: subprocess.CompletedProcess[str], command: str, status: int, sys_message: str
) -> dict[str, object]:
    """Exit 1, an error record on stdout, one line naming sys_message on stderr."""
    assert result.returncode == 1, result.stdout + result.stderr
    record: dict[str, object] = json.loads(result.stdout)
    assert tuple(record) == FAILURE_FIELDS
    assert record["status"] == status
    assert record["sys_message"] == sys_message
    assert result.stderr == f"kodmobi: {command} failed: {sys_message}\n"
    return record


class TestCreate:
    def test_creates_a_session_and_sends_a_code(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "create", PHONE, "--format", "json")

        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        session = json.loads(result.stdout)
        assert list(session) == ["session_id", "session_expired_at", "sent_to", "channels"]
        assert session["sent_to"] == "whatsapp"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", session["session_expired_at"])
        assert [c["type"] for c in session["channels"]] == ["whatsapp", "telegram", "sms"]
        assert session["channels"][0]["timeout"] == 60
        (delivery,) = flow_fake.deliveries
        assert (delivery.to, delivery.channel) == (PHONE, "whatsapp")
        assert delivery.session_id == session["session_id"]

    def test_no_send_and_type_are_sent_as_asked(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(
            flow_fake, "create", PHONE, "--type", "sms", "--no-send", "--format", "jsonl"
        )

        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 1
        assert json.loads(result.stdout)["sent_to"] is None
        assert flow_fake.deliveries == []
        (request,) = flow_fake.requests
        assert request.path == "/session/create"

    def test_the_table_lists_the_session_and_its_channels(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "create", PHONE)

        assert result.returncode == 0, result.stderr
        assert not ANSI_ESCAPE.search(result.stdout)
        session_id = flow_fake.deliveries[0].session_id
        assert session_id is not None
        assert re.search(rf"session_id\s+│ {session_id}", result.stdout)
        assert re.search(r"sent_to\s+│ whatsapp", result.stdout)
        assert "whatsapp (WhatsApp): active, may send again in 60 s" in result.stdout
        assert "telegram (Telegram): inactive" in result.stdout

    def test_a_refusal_is_an_error_record_and_exit_1(self, flow_fake: FakeKodMobi) -> None:
        create(flow_fake)

        result = kodmobi(flow_fake, "create", PHONE, "--format", "json")

        record = assert_refused(result, "create", 400, "ERROR_MESSAGE_ATTEMPT")
        assert record["error_params"] == {"timeout": 60}
        assert "Too soon" in str(record["error"])

    @pytest.mark.parametrize("to", ["79001234567", "not an address", "+0123"])
    def test_a_bad_to_is_exit_2_before_any_request(self, flow_fake: FakeKodMobi, to: str) -> None:
        result = kodmobi(flow_fake, "create", to)

        assert_one_line_error(result, "E.164")
        assert flow_fake.requests == []

    def test_needs_the_public_key(self, flow_fake: FakeKodMobi) -> None:
        result = run_cli("create", PHONE, fake=flow_fake, key=None)

        assert_one_line_error(result, "KODMOBI_API_KEY", "environment only")
        assert flow_fake.requests == []

    def test_the_challenge_token_goes_in_the_named_header(self, flow_fake: FakeKodMobi) -> None:
        flow_fake.enable_challenge("solved-captcha", header="X-Captcha")

        without = kodmobi(flow_fake, "create", PHONE, "--format", "json")
        wrong_header = kodmobi(
            flow_fake, "create", PHONE, "--challenge-token", "solved-captcha", "--format", "json"
        )
        right = kodmobi(
            flow_fake,
            "create",
            PHONE,
            "--challenge-token",
            "solved-captcha",
            "--challenge-header",
            "X-Captcha",
            "--format",
            "json",
        )

        assert_refused(without, "create", 400, "ERROR_CHALLENGE")
        assert_refused(wrong_header, "create", 400, "ERROR_CHALLENGE")
        assert right.returncode == 0, right.stdout + right.stderr


class TestSend:
    def test_sends_again_over_another_channel(self, flow_fake: FakeKodMobi) -> None:
        session_id = create(flow_fake)

        result = kodmobi(flow_fake, "send", session_id, "sms", "--format", "json")

        assert result.returncode == 0, result.stderr
        sent = json.loads(result.stdout)
        assert sent["session_id"] == session_id
        assert sent["channel"]["type"] == "sms"
        assert sent["channel"]["timeout"] == 60
        assert [d.channel for d in flow_fake.deliveries] == ["whatsapp", "sms"]

    def test_during_the_cool_down_it_is_refused(self, flow_fake: FakeKodMobi) -> None:
        session_id = create(flow_fake)

        result = kodmobi(flow_fake, "send", session_id, "whatsapp", "--format", "json")

        record = assert_refused(result, "send", 400, "ERROR_MESSAGE_ATTEMPT")
        assert record["error_params"] == {"timeout": 60}
        assert len(flow_fake.deliveries) == 1

    def test_an_unknown_session_is_refused_404(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "send", UNKNOWN_ID, "sms", "--format", "json")

        assert_refused(result, "send", 404, "ERROR_MESSAGE_NOT_FOUND")

    def test_a_bad_session_id_is_exit_2(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "send", "01hzx3q8v6w4t1n6b2c3d4e5f6", "sms")

        assert_one_line_error(result, "ULID")
        assert flow_fake.requests == []

    def test_csv_is_not_offered_for_a_nested_answer(self) -> None:
        result = run_cli("send", UNKNOWN_ID, "sms", "--format", "csv")

        assert result.returncode == 2
        assert "invalid choice: 'csv'" in result.stderr


class TestCheck:
    def test_the_right_code_answers_a_verify_token(self, flow_fake: FakeKodMobi) -> None:
        session_id = create(flow_fake)

        result = kodmobi(
            flow_fake, "check", session_id, flow_fake.code_for(session_id), "--format", "csv"
        )

        assert result.returncode == 0, result.stderr
        (row,) = csv.DictReader(io.StringIO(result.stdout))
        assert list(row) == ["verify_token", "is_test", *FAILURE_FIELDS]
        assert row["verify_token"]
        assert row["is_test"] == "false"
        assert row["error"] == row["status"] == ""

    def test_a_wrong_code_is_refused_with_the_count(self, flow_fake: FakeKodMobi) -> None:
        session_id = create(flow_fake)
        wrong = "1111" if flow_fake.code_for(session_id) != "1111" else "2222"

        first = kodmobi(flow_fake, "check", session_id, wrong, "--format", "json")
        second = kodmobi(flow_fake, "check", session_id, wrong, "--format", "csv")

        record = assert_refused(first, "check", 400, "ERROR_MESSAGE_WRONG_CODE")
        assert record["error_params"] == {"count": 1}
        assert second.returncode == 1
        (row,) = csv.DictReader(io.StringIO(second.stdout))
        assert row["sys_message"] == "ERROR_MESSAGE_WRONG_CODE"
        assert json.loads(row["error_params"]) == {"count": 2}
        assert row["verify_token"] == ""

    def test_a_test_recipient_checks_as_a_test(self, flow_fake: FakeKodMobi) -> None:
        flow_fake.add_test_recipient(PHONE, "0000")
        session_id = create(flow_fake)

        result = kodmobi(flow_fake, "check", session_id, "0000", "--format", "json")

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["is_test"] is True

    @pytest.mark.parametrize("code", ["12", "1234567", "12a4"])
    def test_a_malformed_code_is_exit_2(self, flow_fake: FakeKodMobi, code: str) -> None:
        result = kodmobi(flow_fake, "check", UNKNOWN_ID, code)

        assert_one_line_error(result, "4 to 6 digits")
        assert flow_fake.requests == []


class TestVerify:
    def test_verifies_once_with_the_secret_key(self, flow_fake: FakeKodMobi) -> None:
        token = verify_token(flow_fake, create(flow_fake))

        first = kodmobi(flow_fake, "verify", token, "--format", "json")
        again = kodmobi(flow_fake, "verify", token, "--format", "json")

        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == {"to": PHONE, "phone": PHONE}
        assert_refused(again, "verify", 404, "ERROR_MESSAGE_NOT_FOUND")
        assert [r.headers.get("x-api-key") for r in flow_fake.requests[-2:]] == [PROJECT_SECRET] * 2

    @pytest.mark.parametrize(
        "token",
        ["-41jAwvHyb-hBlHBgfFYcH6kpQ", "-hZ1pDq6n3", "-vQ7", "--xK2mQ", "-"],
        ids=["dash", "dash-h", "dash-v", "double-dash", "lone-dash"],
    )
    @pytest.mark.parametrize("options_first", [False, True], ids=["after", "before"])
    def test_a_token_that_starts_with_a_dash_is_taken_as_pasted(
        self,
        flow_fake: FakeKodMobi,
        monkeypatch: pytest.MonkeyPatch,
        token: str,
        options_first: bool,
    ) -> None:
        # One token in 64 starts with "-" (URL-safe base64): argparse took it for an
        # option and asked for the token the user had just pasted.
        monkeypatch.setattr(flow_fake._project.flow, "new_verify_token", lambda: token)
        assert verify_token(flow_fake, create(flow_fake)) == token
        options = ["--format", "json", "--timeout", "5"]
        args = [*options, token] if options_first else [token, *options]

        result = kodmobi(flow_fake, "verify", *args)

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"to": PHONE, "phone": PHONE}

    def test_without_the_secret_key_it_is_exit_2_before_any_request(
        self, flow_fake: FakeKodMobi
    ) -> None:
        result = kodmobi(flow_fake, "verify", "some-token", secret=None)

        assert_one_line_error(result, "KODMOBI_SECRET_KEY", "environment only")
        assert flow_fake.requests == []

    def test_a_secret_key_kod_mobi_rejects_is_exit_2(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "verify", "some-token", secret="sk-NOT-THE-PROJECTS")

        assert_one_line_error(result, "401", "check KODMOBI_SECRET_KEY")
        assert "sk-NOT-THE-PROJECTS" not in result.stderr

    def test_the_help_says_keys_come_from_the_environment_only(self) -> None:
        result = run_cli("verify", "--help", key=None)

        assert result.returncode == 0
        assert "KODMOBI_SECRET_KEY, and only from there" in result.stdout
        assert "--secret-key" not in result.stdout


class TestManualSend:
    def test_delivers_the_code_given(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(
            flow_fake,
            "manual-send",
            PHONE,
            "sms",
            "--code",
            "4821",
            "--callback-url",
            "https://example.com/hook",
            "--format",
            "jsonl",
        )

        assert result.returncode == 0, result.stderr
        message = json.loads(result.stdout)
        assert list(message) == ["message", "code", "message_id"]
        (delivery,) = flow_fake.deliveries
        assert (delivery.code, delivery.callback_url) == ("4821", "https://example.com/hook")
        assert delivery.message_id == message["message_id"]

    def test_an_unknown_channel_is_refused(self, flow_fake: FakeKodMobi) -> None:
        result = kodmobi(flow_fake, "manual-send", PHONE, "pigeon", "--format", "json")

        assert_refused(result, "manual-send", 400, "ERROR_PROJECT_HAS_NO_CHANNEL")

    @pytest.mark.parametrize(
        ("args", "word"),
        [
            (["--callback-url", "ftp://example.com/hook"], "callback_url"),
            (["--code", "12"], "4 to 6 digits"),
        ],
    )
    def test_a_bad_argument_is_exit_2(
        self, flow_fake: FakeKodMobi, args: list[str], word: str
    ) -> None:
        result = kodmobi(flow_fake, "manual-send", PHONE, "sms", *args)

        assert_one_line_error(result, word)
        assert flow_fake.requests == []

    def test_a_bad_provider_id_is_a_usage_error(self) -> None:
        result = run_cli("manual-send", PHONE, "sms", "--provider-id", "0")

        assert result.returncode == 2
        assert result.stdout == ""


class TestKeysScrubbed:
    @pytest.mark.parametrize("fmt", ["table", "json", "csv"])
    def test_neither_key_is_printed_when_kod_mobi_echoes_them(
        self, flow_fake: FakeKodMobi, fmt: str
    ) -> None:
        echo = f"keys {SECRET_KEY} and {PROJECT_SECRET} are not allowed"
        flow_fake.script(Fault.status(400, error=echo, sys_message=echo), route="/verify")

        result = kodmobi(flow_fake, "-v", "verify", "some-token", "--format", fmt)

        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "DEBUG" in result.stderr
        assert SECRET_KEY not in output
        assert PROJECT_SECRET not in output
        assert "keys *** and *** are not allowed" in result.stdout

    def test_not_in_a_successful_answer_either(self, flow_fake: FakeKodMobi) -> None:
        flow_fake.script(
            Fault.body(200, json.dumps({"to": PROJECT_SECRET, "phone": None}).encode()),
            route="/verify",
        )

        result = kodmobi(flow_fake, "verify", "some-token", "--format", "json")

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"to": "***", "phone": None}


class TestDemoFlow:
    def test_the_demo_walks_the_flow_after_its_batch(self) -> None:
        result = run_cli("demo", "--sessions", "40", "--no-faults", key=None)

        assert result.returncode == 0, result.stdout + result.stderr
        batch, flow = result.stdout.split("\nThe one-time-code flow, one user on a fresh fake:\n")
        assert re.search(r"As scripted +yes, all 40\n", batch)
        lines = flow.splitlines()
        assert len(lines) == 7
        assert re.match(rf"  create {re.escape(FLOW_PHONE)} +session \w{{26}}, code sent", lines[0])
        assert "refused: 400 ERROR_MESSAGE_ATTEMPT timeout=60" in lines[1]
        assert "refused: 400 ERROR_MESSAGE_WRONG_CODE count=1" in lines[2]
        assert "accepted: verify_token" in lines[3]
        assert "is_test false" in lines[3]
        assert f"verified with the secret key: {FLOW_PHONE}" in lines[4]
        assert "refused: 404 ERROR_MESSAGE_NOT_FOUND (a token verifies once)" in lines[5]
        assert lines[6] == "Flow as expected   yes, all 6 calls"

    async def test_run_flow_reports_success_in_process(self) -> None:
        out = io.StringIO()

        assert await run_flow(out)
        assert out.getvalue().endswith("Flow as expected   yes, all 6 calls\n")
