"""The fake's answer logic as pure functions: bytes in, bytes out, no sockets, no aiohttp."""

from __future__ import annotations

import ast
import datetime
import json
from pathlib import Path

import pytest

from kodmobi_async.testing._answers import Call, answer
from kodmobi_async.testing._state import ChannelList, Project, default_channels

PACKAGE = Path(__file__).resolve().parent.parent / "kodmobi_async" / "testing"
PURE = ("_answers.py", "_state.py", "_envelope.py")


def project() -> Project:
    origin = datetime.datetime(2026, 11, 30, 6, 40, tzinfo=datetime.timezone.utc)
    return Project(
        frozenset({"pub"}),
        frozenset({"sec"}),
        ChannelList.of(default_channels()),
        (1000.0, origin),
    )


def post(path: str, document: object, key: str = "pub") -> Call:
    return Call(
        method="POST",
        path=path,
        query={},
        headers={"x-api-key": key},
        body=json.dumps(document).encode(),
    )


class TestPurity:
    @pytest.mark.parametrize("name", PURE)
    def test_imports_neither_aiohttp_nor_the_adapter(self, name: str) -> None:
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        imported = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }

        assert not {module for module in imported if module.startswith("aiohttp")}
        assert not imported & {"_server", "_faults", "_record", "_thread", "_controls"}


class TestAnswer:
    def test_the_whole_flow_on_bytes(self) -> None:
        state = project()

        created = answer(post("/session/create", {"to": "+79001234567"}), state, 1000.0)
        body = json.loads(created.body)
        code = state.flow.sessions[body["session_id"]].code
        checked = answer(
            post("/v2/check", {"session_id": body["session_id"], "code": code}), state, 1010.0
        )
        token = json.loads(checked.body)["verify_token"]
        verified = answer(post("/verify", {"verify_token": token}, key="sec"), state, 1020.0)

        assert (created.status, created.headers["Content-Type"]) == (
            200,
            "application/json; charset=utf-8",
        )
        assert body["session_expired_at"] == "2026-11-30T06:43:00+00:00"
        assert checked.status == 200
        assert json.loads(verified.body) == {"to": "+79001234567", "phone": "+79001234567"}

    def test_expiry_is_a_matter_of_the_now_passed_in(self) -> None:
        state = project()
        created = answer(post("/session/create", {"to": "+79001234567"}), state, 1000.0)
        session_id = json.loads(created.body)["session_id"]

        late = answer(
            post("/session/send", {"session_id": session_id, "type": "sms"}), state, 1180.0
        )

        assert (late.status, json.loads(late.body)["sys_message"]) == (
            400,
            "ERROR_SESSION_EXPIRED",
        )
