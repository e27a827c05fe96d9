"""Both JSON parsers the SDK can use (orjson from the ``fast`` extra, or the standard
library) give the same channels, and refuse the same hostile bodies the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kodmobi_async import ResponseValidationError, SessionChannel, _protocol
from kodmobi_async._protocol import decode_channels_response, load_json

CHANNEL = b'{"name":"SMS","type":"sms","is_active":true,"timeout":7,"link":"https://x"}'


@pytest.fixture(params=[json.loads, orjson.loads], ids=["stdlib", "orjson"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    loads: Callable[[bytes], Any] = request.param
    monkeypatch.setattr(_protocol, "_loads", loads)
    return loads


class TestBothParsers:
    def test_orjson_is_chosen_when_installed(self) -> None:
        assert _protocol._json_loader() is orjson.loads

    def test_channels_decode_the_same(self, parser: object) -> None:
        (channel,) = decode_channels_response(200, {}, b"[" + CHANNEL + b"]")
        assert channel == SessionChannel(
            name="SMS", type="sms", is_active=True, timeout=7, link="https://x"
        )

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"not json",
            b"[" * 65 + b"]" * 65,
            b"[" * 5000,
            b'{"a": [1, 2,]}',
            b"\xff\xfe",
            b"[" + CHANNEL + b"] trailing",
        ],
    )
    def test_what_is_not_json_is_a_validation_error(self, parser: object, body: bytes) -> None:
        with pytest.raises(ResponseValidationError) as info:
            decode_channels_response(200, {}, body)
        assert info.value.status == 200
        assert info.value.field_path is None

    def test_deep_nesting_is_refused_before_either_parser_runs(self, parser: object) -> None:
        with pytest.raises(ValueError, match="nested deeper than 64"):
            load_json(b'{"a":' * 70 + b"1" + b"}" * 70)

    def test_nesting_up_to_the_limit_parses(self, parser: object) -> None:
        assert load_json(b"[" * 64 + b"]" * 64) is not None

    @pytest.mark.parametrize("body", [b"[NaN]", b"[12345678901234567890123]"])
    def test_values_only_the_stdlib_accepts_still_end_in_a_documented_error(
        self, parser: object, body: bytes
    ) -> None:
        with pytest.raises(ResponseValidationError):
            decode_channels_response(200, {}, body)
