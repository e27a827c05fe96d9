"""Property-based tests: whatever bytes arrive, every promise of the README holds.

Each example goes over a real loopback socket to :class:`tests.hostile.HostileServer`
(a fresh server and client per example, so examples share nothing) and checks that the
call ended in channels or a documented error, by its deadline, with the API key in no
error text and no log line. The pure parsers and the configuration checks get the same
treatment without sockets.

Profiles: ``ci`` (the default) keeps the whole file to a few hundred examples;
``fuzz`` runs thousands. Pick one with ``HYPOTHESIS_PROFILE`` (``nox -s fuzz`` does).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from kodmobi_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BatchResult,
    ConfigurationError,
    FakeClock,
    KodMobiClient,
    KodMobiError,
    ResponseValidationError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    SessionChannel,
)
from kodmobi_async._errors import status_error_class
from kodmobi_async._protocol import decode_channels_response, parse_retry_after, status_error

from .conftest import SECRET_KEY
from .hostile import (
    ENTRY_POINTS,
    HostileServer,
    LogCapture,
    Reply,
    SeenRequest,
    assert_channels,
    assert_documented,
    assert_key_nowhere,
    exchange,
    http_reply,
    run_call,
    session_ids,
)

# -- profiles ----------------------------------------------------------------------

_SHARED: dict[str, Any] = {
    "deadline": None,  # examples cross sockets on a shared machine: time is not the test
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
# The CI run keeps no database: nothing is written into the checkout. It draws the same
# examples every run, so a red CI always points at a change; finding new examples is
# the fuzz profile's job (`nox -s fuzz`).
settings.register_profile("ci", max_examples=25, database=None, derandomize=True, **_SHARED)
# A long run remembers its failures, under .nox/ which git already ignores.
settings.register_profile(
    "fuzz",
    max_examples=1500,
    database=DirectoryBasedExampleDatabase(
        str(Path(__file__).resolve().parent.parent / ".nox" / "hypothesis")
    ),
    **_SHARED,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
_EXAMPLES = settings().max_examples


def scaled(share: float) -> settings:
    """Settings for a test worth ``share`` of the profile's examples (expensive ones)."""
    return settings(max_examples=max(3, int(_EXAMPLES * share)))


# -- strategies --------------------------------------------------------------------

TIMEOUT = 3.0
KEY = SECRET_KEY.encode()

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Headers that change how the body is framed or decoded: a property that expects the
# status's own error class cannot also let them break the framing.
_FRAMING = {"content-length", "transfer-encoding", "connection", "content-encoding", "upgrade"}

header_names = st.text(_TOKEN_CHARS, min_size=1, max_size=24)
# What a header line can carry: visible ASCII, spaces and tabs, and obs-text.
header_values = st.text(
    st.characters(codec="latin-1", exclude_characters="\r\n\x00", exclude_categories=["Cc"])
    | st.sampled_from(" \t"),
    max_size=80,
)


def with_key(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``text``, sometimes with the API key spliced in, as a server echoing it would."""
    return st.one_of(
        text,
        st.tuples(text, text).map(lambda pair: pair[0] + SECRET_KEY + pair[1]),
    )


def with_key_bytes(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """``data``, sometimes with the API key spliced in."""
    return st.one_of(data, st.tuples(data, data).map(lambda pair: pair[0] + KEY + pair[1]))


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# What a standard JSON encoder writes (RFC 8259 as implementations read it): no NaN or
# Infinity, and integers that fit 64 bits. Python's json writes and reads more; orjson,
# the `fast` extra's parser, refuses those, which makes such an answer a
# ResponseValidationError, still a documented end.
rfc_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """JSON nested far past any recursion limit, as arrays, objects or a mix."""
    # Past 1,000 on purpose: nearer the limit, whether it recurses too deep depends on
    # how deep the stack already is, and a failure would not replay.
    depth = draw(st.integers(min_value=1_100, max_value=20_000))
    openers = draw(st.lists(st.sampled_from(["[", '{"k":', '{"data":', "[1,"]), min_size=1))
    inside = draw(st.sampled_from(["", "1", "null", '"x"']))
    opened = [openers[i % len(openers)] for i in range(depth)]
    closers = "".join("]" if o.startswith("[") else "}" for o in reversed(opened))
    text = "".join(opened) + inside + closers
    # Sometimes inside kod.mobi's envelope or the legacy wrapper, sometimes cut short.
    wrap = draw(st.sampled_from(["{}", '{"error": {}}', '{"success": true, "data": {}}', "{}!"]))
    if wrap == "{}!":
        return text[: draw(st.integers(0, len(text)))].encode()
    return wrap.replace("{}", text, 1).encode() if wrap != "{}" else text.encode()


channel_objects = st.fixed_dictionaries(
    {
        "name": st.text(max_size=20),
        "type": st.sampled_from(["whatsapp", "telegram", "sms", "email"]) | st.text(max_size=10),
        "is_active": st.booleans(),
        "timeout": st.integers(0, 60),
    },
    optional={
        "image_url": st.none() | st.text(max_size=30),
        "link": st.none() | st.text(max_size=30),
        "description": st.none() | st.text(max_size=30),
        "extra": rfc_json_values,
    },
)
# Channels with one field swapped for anything: close to valid, so validation is probed.
near_channels = st.tuples(channel_objects, st.sampled_from(["name", "type", "timeout"])).flatmap(
    lambda pair: json_values.map(lambda value: {**pair[0], pair[1]: value})
)
two_xx_bodies = st.one_of(
    with_key_bytes(st.binary(max_size=2048)),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(near_channels | channel_objects, max_size=5).map(lambda v: json.dumps(v).encode()),
    deep_json(),
)

_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Xyz", ""]
_MONTHS = ["Jan", "Feb", "Jun", "Dec", "Foo", ""]
zones = st.one_of(
    st.sampled_from(["GMT", "UTC", "UT", "EST", "Z", "-0000", "", "+2359", "-2400"]),
    st.integers(-(10**25), 10**25).map(lambda z: f"{z:+d}"),
)
http_dates = st.builds(
    lambda wd, day, mon, year, hms, zone: f"{wd}, {day} {mon} {year} {hms} {zone}".strip(),
    st.sampled_from(_WEEKDAYS),
    st.integers(-5, 99),
    st.sampled_from(_MONTHS),
    st.integers(-10, 10**25),
    st.sampled_from(["00:00:00", "23:59:59", "99:99:99", "12:00", ""]),
    zones,
)
plain_dates = st.datetimes(timezones=st.just(timezone.utc)).map(
    lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")
)
retry_after_values = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr),
    st.floats().map(lambda f: f"{f:.40g}"),
    st.sampled_from(["1e400", "-0", "nan", "inf", "-inf", "0x1p3", "1_0", "٣", " 7 "]),
    http_dates,
    plain_dates,
    with_key(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)),
)
error_statuses = st.one_of(
    st.integers(300, 599),
    st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503, 504]),
    st.integers(600, 999),
    st.integers(100, 199),
)
error_bodies = st.one_of(
    with_key_bytes(st.binary(max_size=1024)),
    st.fixed_dictionaries(
        {},
        optional={
            "success": json_values,
            "error": with_key(st.text(max_size=40)) | json_values,
            "sys_message": with_key(st.text(max_size=20)) | json_values,
            "error_params": st.dictionaries(st.text(max_size=8), with_key(st.text(max_size=20)))
            | json_values,
            "status": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
    deep_json(),
)
error_headers = st.lists(
    st.tuples(
        header_names.filter(lambda n: n.lower() not in _FRAMING),
        with_key(header_values.map(str.strip)),
    ),
    max_size=6,
)


def outcome_of(build: Callable[[], object]) -> object:
    """What ``build()`` returned, or the exception it raised (any, to be checked)."""
    try:
        return build()
    except Exception as exc:
        return exc


def check_retry_after(error: KodMobiError) -> None:
    retry_after = getattr(error, "retry_after", None)
    assert retry_after is None or (
        isinstance(retry_after, float) and math.isfinite(retry_after) and retry_after >= 0
    ), f"retry_after {retry_after!r}"


# -- over sockets -------------------------------------------------------------------


class TestSuccessBodies:
    @given(
        status=st.integers(200, 299),
        body=two_xx_bodies,
        how=st.sampled_from(ENTRY_POINTS),
    )
    @example(status=200, body=b"[" * 1000 + b"]" * 1000, how="session")
    @example(status=200, body=b"not json " + KEY, how="gather")
    async def test_any_body_is_channels_or_a_validation_error(
        self, status: int, body: bytes, how: str
    ) -> None:
        seen = await exchange(
            http_reply(status, body),
            how,
            api_key=SECRET_KEY,
            timeout=TIMEOUT,
            retry=RetryPolicy.disabled(),
        )
        assert seen.requests[0].header("x-api-key") == SECRET_KEY
        ended = seen.ended
        if ended.error is None:
            channels = assert_channels(ended.value)
            # Only a JSON array (bare, or in the legacy wrapper) can be channels.
            data = json.loads(body)
            if isinstance(data, dict):
                data = data["data"]
            assert len(channels) == len(data)
        else:
            error = assert_documented(ended.error)
            if status in {204, 205}:
                # No body is allowed after these: the client may stop at the head.
                assert isinstance(error, ResponseValidationError | APIConnectionError)
            else:
                assert type(error) is ResponseValidationError, repr(error)
            if isinstance(error, ResponseValidationError):
                assert error.status == status
        assert_key_nowhere(SECRET_KEY, ended.error, seen.log_lines)

    @given(channels=st.lists(channel_objects, max_size=6), how=st.sampled_from(ENTRY_POINTS))
    async def test_valid_channels_come_back_as_sent(
        self, channels: list[dict[str, Any]], how: str
    ) -> None:
        body = json.dumps(channels).encode()
        seen = await exchange(http_reply(200, body), how, api_key=SECRET_KEY, timeout=TIMEOUT)
        assert seen.ended.error is None, repr(seen.ended.error)
        got = assert_channels(seen.ended.value)
        assert [c.name for c in got] == [c["name"] for c in channels]
        assert [str(c.type) for c in got] == [c["type"] for c in channels]
        assert [(c.is_active, c.timeout) for c in got] == [
            (c["is_active"], c["timeout"]) for c in channels
        ]
        assert [c.link for c in got] == [c.get("link") for c in channels]


class TestErrorAnswers:
    @given(
        status=error_statuses,
        headers=error_headers,
        body=error_bodies,
        how=st.sampled_from(ENTRY_POINTS),
    )
    @example(status=401, headers=[], body=b"invalid api key " + KEY, how="session")
    @example(status=302, headers=[("Location", "https://x/?k=" + SECRET_KEY)], body=b"", how="iter")
    async def test_any_error_answer_is_its_status_class(
        self, status: int, headers: list[tuple[str, str]], body: bytes, how: str
    ) -> None:
        seen = await exchange(
            http_reply(status, body, headers=headers),
            how,
            api_key=SECRET_KEY,
            timeout=TIMEOUT,
            retry=RetryPolicy.disabled(),
        )
        error = assert_documented(seen.ended.error)
        if 200 <= status < 600:
            assert type(error) is status_error_class(status), repr(error)
        else:
            # 1xx and 6xx-9xx: an HTTP parser may refuse them outright.
            assert isinstance(error, status_error_class(status) | APIConnectionError)
        if isinstance(error, APIStatusError):
            assert error.status == status
        check_retry_after(error)
        assert_key_nowhere(SECRET_KEY, error, seen.log_lines)

    @given(
        status=st.sampled_from([429, 503, 500, 400, 404, 301]),
        value=retry_after_values,
        how=st.sampled_from(ENTRY_POINTS),
    )
    @example(status=429, value="Mon, 01 Jan 99999 00:00:00 GMT", how="session")
    @example(status=503, value="Mon, 01 Jan 2024 00:00:00 +9999999999", how="gather")
    @example(status=500, value="Mon, 01 Jan 2024 00:00:00 +99999999999999", how="iter")
    async def test_any_retry_after_keeps_the_status_class(
        self, status: int, value: str, how: str
    ) -> None:
        reply = http_reply(status, b'{"error": "wait"}', headers=[("Retry-After", value)])
        seen = await exchange(
            reply, how, api_key=SECRET_KEY, timeout=TIMEOUT, retry=RetryPolicy.disabled()
        )
        error = assert_documented(seen.ended.error)
        assert type(error) is status_error_class(status), repr(error)
        assert error.status == status
        check_retry_after(error)
        assert_key_nowhere(SECRET_KEY, error, seen.log_lines)

    @scaled(0.6)
    @given(
        status=st.sampled_from([408, 429, 500, 502, 503, 504]),
        value=st.none() | retry_after_values,
        body=error_bodies,
    )
    async def test_retried_answers_end_in_a_documented_error(
        self, status: int, value: str | None, body: bytes
    ) -> None:
        headers = [] if value is None else [("Retry-After", value)]
        seen = await exchange(
            http_reply(status, body, headers=headers),
            "session",
            api_key=SECRET_KEY,
            timeout=TIMEOUT,
            retry=RetryPolicy(),
            clock=FakeClock(),
        )
        error = assert_documented(seen.ended.error)
        assert isinstance(
            error, status_error_class(status) | RetryBudgetExhaustedError | APITimeoutError
        ), repr(error)
        check_retry_after(error)
        assert_key_nowhere(SECRET_KEY, error, seen.log_lines)


class TestAnyBytes:
    @given(
        data=st.one_of(
            with_key_bytes(st.binary(max_size=1024)),
            st.tuples(
                st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 503 x\r\n", b"HTTP/1.1 "]),
                with_key_bytes(st.binary(max_size=512)),
            ).map(b"".join),
        ),
        then=st.sampled_from(["close", "keep"]),
        how=st.sampled_from(ENTRY_POINTS),
    )
    async def test_any_bytes_end_in_channels_or_a_documented_error(
        self, data: bytes, then: str, how: str
    ) -> None:
        # "keep" leaves the connection open after the bytes: whatever is incomplete
        # then runs into the deadline, so it is kept short.
        seen = await exchange(
            Reply.raw(data, then=then),
            how,
            api_key=SECRET_KEY,
            timeout=0.5,
            retry=RetryPolicy.disabled(),
        )
        if seen.ended.error is None:
            assert_channels(seen.ended.value)
        else:
            check_retry_after(assert_documented(seen.ended.error))
        assert_key_nowhere(SECRET_KEY, seen.ended.error, seen.log_lines)

    @scaled(0.3)
    @given(
        cut=st.integers(0, 200),
        pause=st.floats(0.0, 0.05),
        how=st.sampled_from(ENTRY_POINTS),
    )
    async def test_a_server_that_stops_mid_answer_meets_the_deadline(
        self, cut: int, pause: float, how: str
    ) -> None:
        body = b'[{"name": "a", "type": "sms", "is_active": true, "timeout": 0}]'
        whole = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        cut = min(cut, len(whole) - 1)
        reply = Reply((whole[: cut // 2], pause, whole[cut // 2 : cut]), then="hold")
        seen = await exchange(
            reply, how, api_key=SECRET_KEY, timeout=0.4, retry=RetryPolicy(initial_wait=0.01)
        )
        error = assert_documented(seen.ended.error)
        assert isinstance(error, APITimeoutError | RetryBudgetExhaustedError), repr(error)


# One hostile answer per id of a batch, drawn from everything above.
batch_replies = st.one_of(
    st.tuples(st.integers(200, 299), two_xx_bodies).map(lambda p: http_reply(*p)),
    st.tuples(error_statuses, error_bodies, error_headers).map(
        lambda p: http_reply(p[0], p[1], headers=p[2])
    ),
    st.tuples(st.sampled_from([429, 503, 500, 400]), retry_after_values).map(
        lambda p: http_reply(p[0], b"", headers=[("Retry-After", p[1])])
    ),
    st.binary(max_size=256).map(Reply.raw),
)


class TestBatches:
    @scaled(0.3)
    @given(
        replies=st.lists(batch_replies, min_size=1, max_size=12),
        good=st.integers(0, 30),
        streamed=st.booleans(),
    )
    async def test_every_id_gets_exactly_one_outcome(
        self, replies: list[Reply], good: int, streamed: bool
    ) -> None:
        ids = session_ids(len(replies) + good)
        by_id = dict(zip(ids, replies, strict=False))
        fine = http_reply(200, b"[]", then="keep")

        def respond(request: SeenRequest) -> Reply:
            return by_id.get(request.session_id or "", fine)

        with LogCapture() as logs:
            async with HostileServer(respond) as server:
                client = KodMobiClient(
                    SECRET_KEY, base_url=server.url, timeout=TIMEOUT, clock=FakeClock()
                )
                try:
                    # No deadline for a whole batch: this only guards against a hang
                    # (each lookup may spend its attempts' real time limits).
                    if streamed:

                        async def collect() -> list[tuple[str, object]]:
                            stream = client.iter_session_channels(ids, concurrency=8)
                            return [item async for item in stream]

                        ended = await run_call(collect(), deadline=TIMEOUT * 4)
                    else:
                        ended = await run_call(
                            client.gather_session_channels(ids, concurrency=8),
                            deadline=TIMEOUT * 4,
                        )
                finally:
                    await client.close()
        # A 401 or 403 stops a batch by design: it must then say what finished.
        if ended.error is not None:
            error = assert_documented(ended.error)
            assert_key_nowhere(SECRET_KEY, error, logs.lines)
            assert getattr(error, "status", None) in {401, 403}, repr(error)
            if not streamed:
                partial = getattr(error, "partial_result", None)
                assert isinstance(partial, BatchResult)
                assert set(partial) | set(partial.not_looked_up) <= set(ids)
            return
        if streamed:
            assert isinstance(ended.value, list)
            assert len(ended.value) == len(ids)
            outcomes = dict(ended.value)
        else:
            assert isinstance(ended.value, BatchResult)
            outcomes = dict(ended.value)
        assert sorted(outcomes) == sorted(ids)
        for session_id, outcome in outcomes.items():
            if isinstance(outcome, BaseException):
                assert_key_nowhere(SECRET_KEY, assert_documented(outcome))
            else:
                assert_channels(outcome)
                if session_id not in by_id:
                    assert outcome == []
        assert_key_nowhere(SECRET_KEY, None, logs.lines)


# -- pure functions ------------------------------------------------------------------


class TestPureParsers:
    @given(value=st.text() | retry_after_values)
    @example(value="Mon, 01 Jan 99999 00:00:00 GMT")
    @example(value="Mon, 01 Jan 2024 00:00:00 +99999999999999")
    @settings(max_examples=_EXAMPLES * 4)
    def test_parse_retry_after_never_raises(self, value: str) -> None:
        seconds = parse_retry_after(value)
        assert seconds is None or (math.isfinite(seconds) and seconds >= 0)

    @given(value=retry_after_values, now=st.datetimes(timezones=st.just(timezone.utc)))
    @example(value="0 JAN 2147483648 0:0 GMT", now=datetime(2000, 1, 1, tzinfo=timezone.utc))
    @example(value="Fri, 31 Dec 9999 23:59:59 -2359", now=datetime.min.replace(tzinfo=timezone.utc))
    @settings(max_examples=_EXAMPLES * 4)
    def test_parse_retry_after_with_any_now_never_raises(self, value: str, now: datetime) -> None:
        seconds = parse_retry_after(value, now=now)
        assert seconds is None or (math.isfinite(seconds) and seconds >= 0)

    @given(
        status=st.integers(100, 999),
        headers=st.dictionaries(st.text(max_size=20), st.text(max_size=60) | retry_after_values),
        body=st.binary(max_size=512) | deep_json() | error_bodies,
    )
    @settings(max_examples=_EXAMPLES * 4)
    def test_status_error_never_raises(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        error = status_error(status, headers, body)
        assert type(error) is status_error_class(status)
        assert error.status == status
        check_retry_after(error)
        str(error)
        repr(error)

    @given(status=st.integers(100, 999), body=two_xx_bodies | error_bodies)
    @settings(max_examples=_EXAMPLES * 4)
    def test_decoding_raises_only_documented_errors(self, status: int, body: bytes) -> None:
        outcome = outcome_of(lambda: decode_channels_response(status, {}, body))
        if isinstance(outcome, BaseException):
            error = assert_documented(outcome)
            assert isinstance(error, APIStatusError | ResponseValidationError)
            assert error.status == status
        else:
            assert 200 <= status < 300
            assert all(type(c) is SessionChannel for c in assert_channels(outcome))


# -- configuration -------------------------------------------------------------------

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**500),
    st.integers(max_value=-(10**300)),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.just(timedelta(seconds=1)),
)
# A fragment no real message contains, so finding it means the secret was repeated.
secret_parts = st.text("ABCDEFGHJKMNPQRSTVWXYZ23456789", min_size=6, max_size=12).map(
    lambda s: "Q" + s
)


class TestConfiguration:
    @given(name=st.sampled_from(["timeout", "max_connections"]), value=numbers)
    @example(name="timeout", value=10**400)
    @example(name="timeout", value=float("inf"))
    @example(name="timeout", value=float("nan"))
    @example(name="max_connections", value=10**400)
    @settings(max_examples=_EXAMPLES * 2)
    def test_any_number_is_accepted_or_a_configuration_error(self, name: str, value: Any) -> None:
        client = outcome_of(lambda: KodMobiClient(SECRET_KEY, **{name: value}))
        if isinstance(client, BaseException):
            error = assert_documented(client)
            assert isinstance(error, ConfigurationError)
            assert isinstance(error, ValueError)
            assert SECRET_KEY not in str(error)
            return
        assert isinstance(client, KodMobiClient)
        if name == "timeout":
            assert math.isfinite(client.timeout)
            assert client.timeout > 0
            assert not isinstance(value, bool)
        else:
            assert type(value) is int
            assert 1 <= value < 10**300

    @given(
        name=st.sampled_from(
            [
                "attempts",
                "initial_wait",
                "max_wait",
                "max_retry_after",
                "attempt_timeout",
                "budget",
                "budget_refill",
            ]
        ),
        value=numbers,
    )
    @example(name="initial_wait", value=10**400)
    @settings(max_examples=_EXAMPLES * 2)
    def test_retry_policy_accepts_or_raises_a_configuration_error(
        self, name: str, value: Any
    ) -> None:
        policy = outcome_of(lambda: RetryPolicy(**{name: value}))
        if isinstance(policy, BaseException):
            assert isinstance(assert_documented(policy), ConfigurationError)

    @given(
        left=secret_parts,
        separator=st.sampled_from(list("#/?@:")) | st.text("#/?@:%", min_size=1, max_size=3),
        right=secret_parts,
        user=st.sampled_from(["", "user", "u%40x"]),
        host=st.sampled_from(["api.kod.mobi", "127.0.0.1:8080", "[::1]"]),
        scheme=st.sampled_from(["https", "http"]),
    )
    @example(
        left="QPa55", separator="#", right="QWord", user="user", host="api.kod.mobi", scheme="https"
    )
    @settings(max_examples=_EXAMPLES * 2)
    def test_a_password_is_never_repeated(
        self, left: str, separator: str, right: str, user: str, host: str, scheme: str
    ) -> None:
        url = f"{scheme}://{user}:{left}{separator}{right}@{host}"
        with pytest.raises(ConfigurationError) as info:
            KodMobiClient(SECRET_KEY, base_url=url)
        for part in (left, right):
            for text in (str(info.value), repr(info.value), repr(info.value.args)):
                assert part not in text

    @given(
        token=secret_parts,
        shape=st.sampled_from(["/?token={}", "?{}", "/#token={}", "/path?a=1&key={}#x", "#{}"]),
        host=st.sampled_from(["api.kod.mobi", "127.0.0.1:8080"]),
    )
    @settings(max_examples=_EXAMPLES * 2)
    def test_a_query_or_fragment_token_is_never_repeated(
        self, token: str, shape: str, host: str
    ) -> None:
        url = f"https://{host}" + shape.format(token)
        with pytest.raises(ConfigurationError) as info:
            KodMobiClient(SECRET_KEY, base_url=url)
        for text in (str(info.value), repr(info.value), repr(info.value.args)):
            assert token not in text
