"""The one rule for the flow's calls, drawn at random over real sockets: whatever bytes
answer a create, send, check, verify, manual or settings call, it ends in its model or a
documented error, by its deadline, with neither key anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kodmobi_async import (
    APIConnectionError,
    APIStatusError,
    KodMobiClient,
    ResponseValidationError,
    RetryPolicy,
)
from kodmobi_async._errors import status_error_class

from .conftest import SECRET_KEY
from .hostile import (
    HostileServer,
    LogCapture,
    assert_documented,
    assert_key_nowhere,
    http_reply,
    run_call,
)
from .test_properties import scaled

SERVER_SECRET = "sk-SERVER-SECRET-LEAKCHECK-0c1d"
SID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
TIMEOUT = 3.0

Call = Callable[[KodMobiClient], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "create": lambda c: c.create_session("+79001234567"),
    "create-quiet": lambda c: c.create_session("user@example.com", send=False),
    "send": lambda c: c.send_code(SID, "sms"),
    "check": lambda c: c.check_code(SID, "0421"),
    "verify": lambda c: c.verify("vt-0123456789"),
    "manual-channels": lambda c: c.get_manual_channels(),
    "manual-send": lambda c: c.manual_send("+79001234567", "sms", code="0421"),
    "settings": lambda c: c.get_settings(SID),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
echoing = st.sampled_from([SECRET_KEY, SERVER_SECRET, ""])


def plausible(value: Any) -> dict[str, Any]:
    """Real field names with random values: the answers that get furthest in decoding."""
    return {
        "session_id": value,
        "session_expired_at": value,
        "sent_to": value,
        "channels": value,
        "channel": value,
        "verify_token": value,
        "is_test": value,
        "to": value,
        "message": value,
        "code": value,
        "message_id": value,
    }


async def one_call(name: str, body: bytes, status: int, headers: list[tuple[str, str]]) -> None:
    before = asyncio.all_tasks()
    with LogCapture() as logs:
        async with HostileServer(http_reply(status, body, headers=headers)) as server:
            client = KodMobiClient(
                SECRET_KEY,
                secret_key=SERVER_SECRET,
                base_url=server.url,
                timeout=TIMEOUT,
                retry=RetryPolicy.disabled(),
            )
            try:
                ended = await run_call(CALLS[name](client), deadline=TIMEOUT)
            finally:
                await client.close()
    await asyncio.sleep(0)
    assert not {t for t in asyncio.all_tasks() - before if not t.done()}
    if ended.error is not None:
        error = assert_documented(ended.error)
        if 200 <= status < 300 and status not in {204, 205}:
            assert type(error) is ResponseValidationError, repr(error)
        elif not 200 <= status < 300 and isinstance(error, APIStatusError):
            assert type(error) is status_error_class(status)
        else:
            assert isinstance(error, ResponseValidationError | APIConnectionError | APIStatusError)
    for key in (SECRET_KEY, SERVER_SECRET):
        assert_key_nowhere(key, ended.error, logs.lines)


class TestFlowCallsUnderAnyAnswer:
    @scaled(0.6)
    @given(
        name=st.sampled_from(sorted(CALLS)),
        status=st.integers(200, 299),
        value=json_values,
        echo=echoing,
    )
    @example(name="create", status=200, value="[" * 1000, echo="")
    async def test_any_success_body_is_the_model_or_a_validation_error(
        self, name: str, status: int, value: Any, echo: str
    ) -> None:
        data = plausible(value) if isinstance(value, str | int | bool) else value
        body = json.dumps(data).encode() if not isinstance(data, str) else data.encode()
        await one_call(name, body + echo.encode(), status, [("Content-Type", "application/json")])

    @scaled(0.6)
    @given(
        name=st.sampled_from(sorted(CALLS)),
        status=st.integers(300, 599),
        error=st.text(max_size=40),
        params=json_values,
        echo=echoing,
        retry_after=st.none() | st.text(max_size=30) | st.integers(-5, 10**20).map(str),
    )
    async def test_any_error_answer_is_its_status_class(
        self,
        name: str,
        status: int,
        error: str,
        params: Any,
        echo: str,
        retry_after: str | None,
    ) -> None:
        envelope = {
            "success": False,
            "error": error + echo,
            "error_params": params,
            "status": status,
            "sys_message": "ERROR_" + echo,
        }
        headers = [("Content-Type", "application/json")]
        if retry_after is not None and "\r" not in retry_after and "\n" not in retry_after:
            headers.append(("Retry-After", retry_after))
        if 300 <= status < 400:
            headers.append(("Location", f"https://elsewhere.example/{echo}"))
        await one_call(name, json.dumps(envelope).encode(), status, headers)
