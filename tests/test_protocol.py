"""The wire protocol, tested with plain values and bytes: no sockets, no event loop."""

from __future__ import annotations

import email.utils
import enum
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from kodmobi_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ChannelType,
    ConfigurationError,
    ConflictError,
    InvalidSessionIdError,
    KodMobiError,
    ManualChannel,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ResponseValidationError,
    ServerError,
    Session,
    SessionChannel,
    _converter,
)
from kodmobi_async._protocol import (
    API_KEY_ENV,
    BASE_URL_ENV,
    CHANNELS_PATH,
    DEFAULT_BASE_URL,
    MAX_JSON_DEPTH,
    SECRET_KEY_ENV,
    decode_channels_response,
    decode_response,
    is_positive_seconds,
    load_json,
    mask_session_id,
    parse_retry_after,
    resolve_api_key,
    resolve_base_url,
    resolve_keys,
    shown_url,
    status_error,
    validate_language,
    validate_session_id,
)
from kodmobi_async._redact import Redactor

ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
KEY = "sk-LEAKCHECK-protocol-7d41"

# One well-formed channel, to splice next to a broken one.
OK_ITEM = b'{"name": "SMS", "type": "sms", "is_active": true, "timeout": 0}'

NOT_FOUND_ENVELOPE = (
    b'{"success": false, "error": "Session not found", "error_params": {},'
    b' "status": 404, "sys_message": "ERROR_MESSAGE_NOT_FOUND"}'
)

NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""


def decode_error(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> APIStatusError:
    """Decode a non-success response and return the error it raises."""
    with pytest.raises(APIStatusError) as info:
        decode_channels_response(status, headers or {}, body)
    return info.value


def validation_error(body: bytes, status: int = 200) -> ResponseValidationError:
    """Decode a success response whose body is broken and return the error it raises."""
    with pytest.raises(ResponseValidationError) as info:
        decode_channels_response(status, {}, body)
    return info.value


class TestValidateSessionId:
    @pytest.mark.parametrize(
        "session_id",
        [
            ULID,
            "00000000000000000000000000",
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # the largest 128-bit ULID
            "0123ABCDEFGHJKMNPQRSTVWXYZ",  # every letter of the alphabet is accepted
        ],
    )
    def test_a_valid_ulid_is_returned_unchanged(self, session_id: str) -> None:
        assert validate_session_id(session_id) is session_id

    def test_a_str_subclass_holding_a_valid_ulid_is_accepted(self) -> None:
        class SessionId(str):
            """What a web framework's typed path parameter may hand over."""

        session_id = SessionId(ULID)

        assert validate_session_id(session_id) == ULID

    @pytest.mark.parametrize(
        ("session_id", "problem"),
        [
            ("", "got an empty string"),
            (ULID[:-1], "got 25 characters"),
            (ULID + "0", "got 27 characters"),
            (ULID + "\n", "got 27 characters"),
            (" " + ULID, "got 27 characters"),
            (ULID.lower(), "pass session_id.upper()"),
            (ULID[:-1] + "v", "pass session_id.upper()"),
            (ULID[:-1] + "I", "outside the alphabet: 'I'"),
            (ULID[:-1] + "L", "outside the alphabet: 'L'"),
            (ULID[:-1] + "O", "outside the alphabet: 'O'"),
            (ULID[:-1] + "U", "outside the alphabet: 'U'"),
            ("01ARZ3NDEK-SV4RRFFQ69G5F_V", "outside the alphabet: '-_'"),
            ("8" + ULID[1:], "got first character '8', which overflows 128 bits"),
            ("Z" + ULID[1:], "got first character 'Z', which overflows 128 bits"),
            (None, "got NoneType"),
            (12345, "got int"),
            (ULID.encode(), "got bytes"),
            ([ULID], "got list"),
        ],
    )
    def test_an_invalid_session_id_raises_saying_what_was_expected(
        self, session_id: object, problem: str
    ) -> None:
        with pytest.raises(InvalidSessionIdError) as info:
            validate_session_id(session_id)

        error = info.value
        assert isinstance(error, ValueError)
        assert isinstance(error, KodMobiError)
        assert error.session_id is session_id
        message = str(error)
        assert "26 characters of Crockford base32" in message
        assert "first character 0-7" in message
        assert problem in message

    @pytest.mark.parametrize("session_id", [ULID[:-1], ULID + "ABCDEFGH"])
    def test_a_wrong_length_id_is_masked_in_the_message(self, session_id: str) -> None:
        with pytest.raises(InvalidSessionIdError) as info:
            validate_session_id(session_id)

        assert session_id not in str(info.value)
        assert mask_session_id(session_id) in str(info.value)

    def test_the_message_states_the_whole_rule(self) -> None:
        with pytest.raises(InvalidSessionIdError) as info:
            validate_session_id(ULID.lower())

        assert str(info.value) == (
            "a session id must be a ULID: 26 characters of Crockford base32 "
            "(0-9 and upper-case A-Z without I, L, O, U), first character 0-7, "
            "as returned by kod.mobi's session/create; "
            "got lower-case letters: pass session_id.upper()"
        )


class TestMaskSessionId:
    def test_a_ulid_keeps_its_first_six_and_last_four_characters(self) -> None:
        assert mask_session_id(ULID) == "01ARZ3…5FAV"

    @pytest.mark.parametrize("session_id", [ULID, "01ARZ3NDEKT"])
    def test_the_masked_form_cannot_be_replayed(self, session_id: str) -> None:
        masked = mask_session_id(session_id)

        assert masked != session_id
        assert session_id not in masked

    @pytest.mark.parametrize("value", ["", "a", "0123456789"])
    def test_a_short_string_is_masked_whole(self, value: str) -> None:
        assert mask_session_id(value) == "…"

    def test_eleven_characters_are_the_shortest_shown_in_part(self) -> None:
        # Six shown, four shown, one hidden: any shorter would show everything.
        assert mask_session_id("0123456789A") == "012345…789A"


class TestResolveApiKey:
    def test_the_argument_wins_over_the_environment(self) -> None:
        assert resolve_api_key(KEY, {API_KEY_ENV: "env-key"}) == KEY

    def test_the_environment_is_the_fallback(self) -> None:
        assert resolve_api_key(None, {API_KEY_ENV: KEY}) == KEY

    def test_a_key_with_inner_punctuation_is_kept_verbatim(self) -> None:
        key = "pk_live.A1b2-C3d4_E5f6=="

        assert resolve_api_key(key, {}) == key

    def test_every_printable_ascii_character_but_space_is_accepted(self) -> None:
        key = "".join(chr(c) for c in range(0x21, 0x7F))

        assert resolve_api_key(key, {}) == key

    def test_no_key_anywhere_names_the_argument_and_the_variable(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_api_key(None, {"OTHER": "x"})

        assert isinstance(info.value, ValueError)
        assert str(info.value) == (
            "no kod.mobi API key: pass api_key=... or set the KODMOBI_API_KEY environment "
            "variable (the project's public key, from user.kod.mobi → settings → api-key)"
        )

    @pytest.mark.parametrize(
        ("api_key", "environ", "where"),
        [
            ("", {}, "api_key is empty"),
            ("   ", {API_KEY_ENV: KEY}, "api_key is empty"),
            (None, {API_KEY_ENV: ""}, "KODMOBI_API_KEY is empty"),
            (None, {API_KEY_ENV: " \t "}, "KODMOBI_API_KEY is empty"),
        ],
    )
    def test_a_blank_key_says_which_source_was_blank(
        self, api_key: str | None, environ: dict[str, str], where: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=where):
            resolve_api_key(api_key, environ)

    @pytest.mark.parametrize(
        "api_key",
        [
            f" {KEY}",
            f"{KEY} ",
            f"{KEY}\n",
            f"{KEY}\r\n",
            f"{KEY[:5]}\r\n{KEY[5:]}",
            f"{KEY[:5]}\t{KEY[5:]}",
            f"{KEY[:5]} {KEY[5:]}",
            f"{KEY[:5]}\u00a0{KEY[5:]}",
            f"{KEY[:5]}\u2028{KEY[5:]}",
            f"{KEY[:5]}\x00{KEY[5:]}",
            f"{KEY[:5]}\x7f{KEY[5:]}",
            f"{KEY}\u00a0",
        ],
    )
    @pytest.mark.parametrize("source", ["argument", "environment"])
    def test_whitespace_or_control_characters_raise_without_echoing_the_key(
        self, api_key: str, source: str
    ) -> None:
        arg, environ = (api_key, {}) if source == "argument" else (None, {API_KEY_ENV: api_key})

        with pytest.raises(ConfigurationError) as info:
            resolve_api_key(arg, environ)

        message = str(info.value)
        assert message == "the API key contains whitespace or control characters; copy it again"
        assert KEY[:5] not in message
        assert KEY[5:] not in repr(info.value.args)

    @pytest.mark.parametrize("source", ["argument", "environment"])
    def test_a_key_that_is_not_utf8_text_raises_without_echoing_the_key(self, source: str) -> None:
        # What os.environ holds for a variable set to bytes that are not UTF-8.
        api_key = f"{KEY[:5]}\udcff{KEY[5:]}"
        arg, environ = (api_key, {}) if source == "argument" else (None, {API_KEY_ENV: api_key})

        with pytest.raises(ConfigurationError) as info:
            resolve_api_key(arg, environ)

        assert str(info.value) == (
            "the API key contains bytes that are not UTF-8 text; copy it again"
        )
        assert vars(info.value) == {}
        assert KEY[5:] not in repr(info.value.args)

    @pytest.mark.parametrize("surrogate", [chr(0xD800), chr(0xDFFF)])
    def test_every_lone_surrogate_is_refused(self, surrogate: str) -> None:
        with pytest.raises(ConfigurationError, match="not UTF-8 text"):
            resolve_api_key(f"sk-{surrogate}", {})

    @pytest.mark.parametrize("key", ["sk-ключ-1", "sk-\ud7ff\ue000"])
    def test_a_non_ascii_key_is_kept(self, key: str) -> None:
        assert resolve_api_key(key, {}) == key

    def test_a_non_string_key_names_its_type_only(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_api_key(b"sk-bytes-key-123", {})  # type: ignore[arg-type]

        assert str(info.value) == "api_key must be a string, got bytes"


class TestResolveBaseUrl:
    def test_production_is_the_default(self) -> None:
        assert resolve_base_url(None, {}) == DEFAULT_BASE_URL == "https://api.kod.mobi"

    def test_the_environment_is_the_fallback(self) -> None:
        environ = {BASE_URL_ENV: "https://api.kodmobi.aggone.net/"}

        assert resolve_base_url(None, environ) == "https://api.kodmobi.aggone.net"

    def test_an_empty_environment_variable_means_the_default(self) -> None:
        assert resolve_base_url(None, {BASE_URL_ENV: ""}) == DEFAULT_BASE_URL

    def test_the_argument_wins_over_the_environment(self) -> None:
        environ = {BASE_URL_ENV: "https://env.example"}

        assert resolve_base_url("https://arg.example", environ) == "https://arg.example"

    @pytest.mark.parametrize(
        ("base_url", "expected"),
        [
            ("https://api.kod.mobi/", "https://api.kod.mobi"),
            ("https://api.kod.mobi//", "https://api.kod.mobi"),
            ("https://api.kod.mobi/v2/", "https://api.kod.mobi/v2"),
            ("https://api.kod.mobi:8443/v2", "https://api.kod.mobi:8443/v2"),
            ("https://proxy.example/kodmobi-X/", "https://proxy.example/kodmobi-X"),
        ],
    )
    def test_trailing_slashes_are_stripped_so_paths_can_be_appended(
        self, base_url: str, expected: str
    ) -> None:
        assert resolve_base_url(base_url, {}) == expected

    @pytest.mark.parametrize(
        ("base_url", "expected"),
        [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.5.5.5/", "http://127.5.5.5"),
            ("http://localhost:1234/", "http://localhost:1234"),
            ("http://LOCALHOST", "http://LOCALHOST"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
        ],
    )
    def test_plain_http_is_allowed_to_loopback(self, base_url: str, expected: str) -> None:
        assert resolve_base_url(base_url, {}) == expected

    @pytest.mark.parametrize(
        "base_url",
        [
            "http://api.kod.mobi",
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
        ],
    )
    def test_plain_http_to_a_remote_host_raises_unless_allowed(self, base_url: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url(base_url, {})

        message = str(info.value)
        assert message.startswith(f"base_url {base_url!r} uses plain http")
        assert "use https" in message
        assert "allow_http=True" in message
        assert resolve_base_url(base_url, {}, allow_http=True) == base_url

    def test_the_error_names_the_environment_variable_when_it_was_the_source(self) -> None:
        with pytest.raises(ConfigurationError, match=f"^{BASE_URL_ENV} 'http://api.kod.mobi'"):
            resolve_base_url(None, {BASE_URL_ENV: "http://api.kod.mobi"})

    @pytest.mark.parametrize(
        "base_url",
        [
            "",
            "api.kod.mobi",
            "//api.kod.mobi",
            "https://",
            "ftp://api.kod.mobi",
            "ws://api.kod.mobi",
            "file:///etc/passwd",
        ],
    )
    def test_anything_but_an_absolute_http_url_raises(self, base_url: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url(base_url, {}, allow_http=True)

        assert "must be an absolute http(s) URL such as 'https://api.kod.mobi'" in str(info.value)

    @pytest.mark.parametrize(
        "base_url",
        [
            "https://user:pw@api.kod.mobi",
            "https://user@api.kod.mobi",
            "https://api.kod.mobi?lang=ru",
            "https://api.kod.mobi#top",
        ],
    )
    def test_credentials_a_query_or_a_fragment_raise(self, base_url: str) -> None:
        with pytest.raises(ConfigurationError, match="must not carry credentials"):
            resolve_base_url(base_url, {})

    @pytest.mark.parametrize("base_url", ["https://api.kod.mobi/v2?", "https://api.kod.mobi#"])
    def test_an_empty_query_or_fragment_raises_too(self, base_url: str) -> None:
        # The client appends paths to the result, and "https://api.kod.mobi/v2?" +
        # "/session/channels" would call /v2 with a query, not /v2/session/channels.
        with pytest.raises(ConfigurationError, match="must not carry credentials"):
            resolve_base_url(base_url, {})

    @pytest.mark.parametrize(
        "base_url",
        [
            "https://sk-LEAKCHECK-url:x@api.kod.mobi",
            "https://user:sk-LEAKCHECK-url@api.kod.mobi",
            "https://user:sk-LEAKCHECK-url@api.kod.mobi:port",
            "ftp://sk-LEAKCHECK-url@api.kod.mobi",
        ],
    )
    def test_credentials_in_the_url_are_not_echoed_in_the_error(self, base_url: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url(base_url, {})

        assert "sk-LEAKCHECK-url" not in str(info.value)

    @pytest.mark.parametrize(
        "base_url",
        [
            "https://api.kod.mobi:99999",
            "https://api.kod.mobi:abc",
            "https://api.kod.mobi:-1",
            "http://[::1",
        ],
    )
    def test_a_malformed_url_raises_saying_it_is_not_valid(self, base_url: str) -> None:
        with pytest.raises(ConfigurationError, match="is not a valid URL") as info:
            resolve_base_url(base_url, {})

        assert isinstance(info.value.__cause__, ValueError)

    def test_a_malformed_url_says_what_urlsplit_found_wrong(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url("https://api.kod.mobi:99999", {})

        assert str(info.value) == (
            "base_url 'https://api.kod.mobi:99999' is not a valid URL: Port out of range 0-65535"
        )

    def test_a_base_url_that_is_not_a_string_names_its_type(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url(5, {})  # type: ignore[arg-type]

        assert (
            str(info.value) == "base_url must be a string such as 'https://api.kod.mobi', got int"
        )

    def test_plain_http_to_a_remote_host_says_why_and_how_to_allow_it(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_base_url("http://api.example", {})

        assert str(info.value) == (
            "base_url 'http://api.example' uses plain http to a non-loopback host, which would "
            "send the API key in clear text; use https, or pass allow_http=True if you really "
            "mean it"
        )


class TestResolveKeys:
    def test_each_key_comes_from_its_argument_else_its_variable(self) -> None:
        environ = {API_KEY_ENV: "pk-env", SECRET_KEY_ENV: "sk-env"}
        assert resolve_keys("pk-arg", "sk-arg", environ) == ("pk-arg", "sk-arg")
        assert resolve_keys(None, None, environ) == ("pk-env", "sk-env")
        assert resolve_keys(None, "sk-arg", {}) == (None, "sk-arg")
        assert resolve_keys("pk-arg", None, {}) == ("pk-arg", None)
        assert resolve_keys(None, None, {SECRET_KEY_ENV: "sk-env"}) == (None, "sk-env")

    def test_no_key_at_all_names_both_kinds(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_keys(None, None, {"OTHER": "x"})

        assert str(info.value) == (
            "no kod.mobi API key: pass api_key=... or set the KODMOBI_API_KEY environment "
            "variable (the project's public key, from user.kod.mobi → settings → api-key); "
            "server-side calls (verify, manual mode) also take secret_key=... or "
            "KODMOBI_SECRET_KEY"
        )

    @pytest.mark.parametrize(
        ("secret_key", "environ", "message"),
        [
            ("", {}, "secret_key is empty; set it to the project's kod.mobi secret key"),
            (None, {SECRET_KEY_ENV: " "}, "KODMOBI_SECRET_KEY is empty; set it to the"),
            (f"{KEY} ", {}, "the secret key contains whitespace or control characters"),
            (None, {SECRET_KEY_ENV: f"{KEY}\n"}, "the secret key contains whitespace"),
            (5, {}, "secret_key must be a string, got int"),
        ],
    )
    def test_a_bad_secret_key_says_which_source_and_never_echoes_it(
        self, secret_key: object, environ: dict[str, str], message: str
    ) -> None:
        with pytest.raises(ConfigurationError) as info:
            resolve_keys("pk-arg", secret_key, environ)  # type: ignore[arg-type]

        assert str(info.value).startswith(message)
        assert KEY not in str(info.value)


class TestShownUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://api.kod.mobi/v2", "https://api.kod.mobi/v2"),
            ("https://user:pw@host/p", "https://***@host/p"),
            # A password may hold '@', '/', '?' and '#': the last '@' ends it.
            ("https://user:p@s/s?#@host/p", "https://***@host/p"),
            ("https://u:p@host/x://y", "https://***@host/x://y"),
            ("https://host/p?a=1?b=2#f", "https://host/p?***"),
            ("https://host/p#a#b?c", "https://host/p#***"),
            ("https://?secret", "https://?***"),
            ("https://#secret", "https://#***"),
            ("host/p?key=1", "host/p?***"),
            ("user:pw@host", "***@host"),
        ],
    )
    def test_credentials_query_and_fragment_are_masked(self, url: str, shown: str) -> None:
        assert shown_url(url) == shown


class TestIsPositiveSeconds:
    @pytest.mark.parametrize("value", [1, 0.5, 1e-9, 86_400])
    def test_a_finite_number_above_zero_is_a_duration(self, value: object) -> None:
        assert is_positive_seconds(value)

    @pytest.mark.parametrize(
        "value",
        [0, 0.0, -1, -0.5, float("inf"), float("nan"), True, "5", None, [1]],
        ids=[
            "zero",
            "zero-float",
            "negative",
            "negative-float",
            "inf",
            "nan",
            "bool",
            "str",
            "none",
            "list",
        ],
    )
    def test_anything_else_is_not(self, value: object) -> None:
        assert not is_positive_seconds(value)


class TestValidateLanguage:
    @pytest.mark.parametrize("language", [None, "en", "ru"])
    def test_a_language_kodmobi_speaks_is_returned(self, language: str | None) -> None:
        assert validate_language(language) == language

    @pytest.mark.parametrize("language", ["", "EN", "de", "en-US", "ru_RU"])
    def test_any_other_language_raises_listing_the_choices(self, language: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            validate_language(language)

        assert str(info.value) == (
            f"language must be one of ['en', 'ru'] (or None for the default), got {language!r}"
        )


class TestParseRetryAfter:
    NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=timezone.utc)

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [("0", 0.0), ("3", 3.0), ("120", 120.0), ("2.5", 2.5), (" 7 ", 7.0), ("0.25", 0.25)],
    )
    def test_delta_seconds_are_read_as_seconds(self, value: str, seconds: float) -> None:
        assert parse_retry_after(value) == seconds

    @pytest.mark.parametrize("value", ["-1", "-0.5", "inf", "-inf", "nan", "1e400"])
    def test_negative_or_non_finite_seconds_are_ignored(self, value: str) -> None:
        assert parse_retry_after(value) is None

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
            ("Wed, 21 Oct 2015 08:27:30 GMT", 3600.0),
            ("Wed, 21 Oct 2015 07:28:00 -0000", 30.0),
            ("Wed, 21 Oct 2015 10:28:00 +0300", 30.0),
        ],
    )
    def test_an_http_date_in_the_future_is_the_time_until_then(
        self, value: str, seconds: float
    ) -> None:
        assert parse_retry_after(value, now=self.NOW) == seconds

    def test_an_http_date_in_the_past_means_no_wait(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=self.NOW) == 0.0

    @pytest.mark.parametrize("value", ["", "soon", "5 seconds", "Wed, 99 Foo 2015", "0x10"])
    def test_garbage_is_ignored(self, value: str) -> None:
        assert parse_retry_after(value, now=self.NOW) is None

    def test_an_absent_header_is_none(self) -> None:
        assert parse_retry_after(None) is None


class TestDecodeChannels:
    def test_a_bare_array_becomes_channels_in_order(self) -> None:
        body = (
            b'[{"name": "Telegram", "type": "telegram", "is_active": true, "timeout": 0,'
            b' "image_url": "https://cdn.kod.mobi/tg.png", "link": "https://t.me/kodmobi_bot"},'
            b' {"name": "SMS", "type": "sms", "is_active": false, "timeout": 42}]'
        )

        channels = decode_channels_response(200, {}, body)

        assert channels == [
            SessionChannel(
                name="Telegram",
                type=ChannelType.TELEGRAM,
                is_active=True,
                timeout=0,
                image_url="https://cdn.kod.mobi/tg.png",
                link="https://t.me/kodmobi_bot",
            ),
            SessionChannel(name="SMS", type=ChannelType.SMS, is_active=False, timeout=42),
        ]

    def test_an_empty_array_is_no_channels(self) -> None:
        assert decode_channels_response(200, {}, b"[]") == []

    def test_unknown_fields_are_ignored(self) -> None:
        body = (
            b'[{"name": "SMS", "type": "sms", "is_active": true, "timeout": 0,'
            b' "sorting": 3, "description": "Text message", "new_thing": {"a": [1]}}]'
        )

        (channel,) = decode_channels_response(200, {}, body)

        assert channel == SessionChannel(
            name="SMS", type=ChannelType.SMS, is_active=True, timeout=0, description="Text message"
        )

    def test_an_unknown_channel_type_is_kept_as_its_string(self) -> None:
        body = b'[{"name": "Viber", "type": "viber", "is_active": true, "timeout": 0}]'

        (channel,) = decode_channels_response(200, {}, body)

        assert channel.type == "viber"
        assert type(channel.type) is str

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b'[{"name": "n", "type": "whatsapp", "is_active": true, "timeout": 0}]', "WHATSAPP"),
            (b'[{"name": "n", "type": "telegram", "is_active": true, "timeout": 0}]', "TELEGRAM"),
            (b'[{"name": "n", "type": "sms", "is_active": true, "timeout": 0}]', "SMS"),
            (b'[{"name": "n", "type": "email", "is_active": true, "timeout": 0}]', "EMAIL"),
        ],
    )
    def test_each_known_type_is_parsed_to_the_enum(self, body: bytes, expected: str) -> None:
        (channel,) = decode_channels_response(200, {}, body)

        assert channel.type is ChannelType[expected]

    def test_the_legacy_success_data_envelope_is_accepted(self) -> None:
        body = b'{"success": true, "data": [' + OK_ITEM + b"]}"

        assert decode_channels_response(200, {}, body) == [
            SessionChannel(name="SMS", type=ChannelType.SMS, is_active=True, timeout=0)
        ]

    def test_a_float_timeout_with_no_fraction_is_accepted_as_an_int(self) -> None:
        body = b'[{"name": "SMS", "type": "sms", "is_active": true, "timeout": 30.0}]'

        (channel,) = decode_channels_response(200, {}, body)

        assert channel.timeout == 30
        assert type(channel.timeout) is int

    @pytest.mark.parametrize("status", [200, 201, 203, 299])
    def test_any_2xx_is_a_success(self, status: int) -> None:
        assert len(decode_channels_response(status, {}, b"[" + OK_ITEM + b"]")) == 1

    @pytest.mark.parametrize("status", [300, 301, 304])
    def test_a_3xx_with_a_channels_body_is_a_redirect_not_channels(self, status: int) -> None:
        with pytest.raises(RedirectError) as info:
            decode_channels_response(status, {}, b"[" + OK_ITEM + b"]")

        assert info.value.status == status

    @pytest.mark.parametrize("status", [100, 199])
    def test_a_1xx_is_not_a_success(self, status: int) -> None:
        with pytest.raises(APIStatusError) as info:
            decode_channels_response(status, {}, b"[" + OK_ITEM + b"]")

        assert type(info.value) is APIStatusError
        assert info.value.status == status


class TestDecodeBrokenSuccessBodies:
    @pytest.mark.parametrize(
        "body", [b"", b"not json", b"[] trailing", b"\xff\xfe\x00", b"<html>ok</html>"]
    )
    def test_a_body_that_is_not_json_raises_without_a_field_path(self, body: bytes) -> None:
        error = validation_error(body)

        assert error.status == 200
        assert error.field_path is None
        assert error.method == "GET"
        assert error.path == CHANNELS_PATH
        assert str(error).startswith("kod.mobi answered 200 to GET /session/channels")
        assert "not JSON" in str(error)
        assert isinstance(error.__cause__, ValueError)

    @pytest.mark.parametrize(
        ("second_item", "field_path", "reason"),
        [
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": "true", "timeout": 0}',
                "$[1].is_active",
                "expected a boolean, got str",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": 1, "timeout": 0}',
                "$[1].is_active",
                "expected a boolean, got int",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": "5"}',
                "$[1].timeout",
                "expected an integer, got str",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": 61}',
                "$[1].timeout",
                "expected 0..60 seconds, got 61",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": -1}',
                "$[1].timeout",
                "expected 0..60 seconds, got -1",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": 2.5}',
                "$[1].timeout",
                "expected an integer, got float",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": true}',
                "$[1].timeout",
                "expected an integer, got bool",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": null}',
                "$[1].timeout",
                "expected an integer, got null",
            ),
            (
                b'{"name": null, "type": "whatsapp", "is_active": true, "timeout": 0}',
                "$[1].name",
                "expected a string, got null",
            ),
            (
                b'{"type": "whatsapp", "is_active": true, "timeout": 0}',
                "$[1].name",
                "required field is missing",
            ),
            (
                b'{"name": "WA", "is_active": true, "timeout": 0}',
                "$[1].type",
                "required field is missing",
            ),
            (
                b'{"name": "WA", "type": 7, "is_active": true, "timeout": 0}',
                "$[1].type",
                "expected a string, got int",
            ),
            (
                b'{"name": "WA", "type": "whatsapp", "is_active": true, "timeout": 0, "link": 5}',
                "$[1].link",
                "expected a string, got int",
            ),
            (b'"whatsapp"', "$[1]", "expected a JSON object, got a string"),
            (b"null", "$[1]", "expected a JSON object, got null"),
            (b"42", "$[1]", "expected a JSON object, got a number"),
        ],
    )
    def test_a_wrongly_typed_field_raises_with_its_json_path(
        self, second_item: bytes, field_path: str, reason: str
    ) -> None:
        error = validation_error(b"[" + OK_ITEM + b", " + second_item + b"]")

        assert error.status == 200
        assert error.field_path == field_path
        assert f"{field_path}: {reason}" in str(error)
        assert str(error).startswith("kod.mobi answered GET /session/channels")
        assert error.__cause__ is not None

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b'{"name": "SMS"}', "expected a JSON array of channels, got an object"),
            (b'{"success": false, "data": []}', "expected a JSON array of channels, got an object"),
            (b'"channels"', "expected a JSON array of channels, got a string"),
            (b"null", "expected a JSON array of channels, got null"),
            (b"true", "expected a JSON array of channels, got a boolean"),
            (b"3.5", "expected a JSON array of channels, got a number"),
        ],
    )
    def test_a_top_level_value_that_is_not_an_array_raises_at_the_root(
        self, body: bytes, reason: str
    ) -> None:
        error = validation_error(body)

        assert error.field_path == "$"
        assert f"$: {reason}" in str(error)

    def test_several_problems_report_the_first_and_count_the_rest(self) -> None:
        body = b'[{"name": 1, "type": "sms", "is_active": "no", "timeout": "5"}]'

        error = validation_error(body)

        assert error.field_path == "$[0].name"
        assert str(error).endswith("$[0].name: expected a string, got int (and 2 more problems)")

    def test_a_body_that_is_not_json_names_the_method_and_path_given(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            decode_channels_response(200, {}, b"<html>", method="HEAD", path="/v2/channels")

        assert (info.value.method, info.value.path) == ("HEAD", "/v2/channels")
        assert str(info.value).startswith("kod.mobi answered 200 to HEAD /v2/channels with")

    def test_the_method_and_path_given_are_reported(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            decode_channels_response(201, {}, b"{}", method="POST", path="/v2/channels")

        assert (info.value.status, info.value.method, info.value.path) == (
            201,
            "POST",
            "/v2/channels",
        )
        assert "POST /v2/channels" in str(info.value)


class TestDecodeErrorStatuses:
    @pytest.mark.parametrize(
        ("status", "error_class"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (429, RateLimitError),
            (500, ServerError),
            (502, ServerError),
            (503, ServerError),
            (504, ServerError),
            (408, APIStatusError),
            (418, APIStatusError),
            (422, APIStatusError),
        ],
    )
    def test_each_status_raises_its_class_with_the_envelope_fields(
        self, status: int, error_class: type[APIStatusError]
    ) -> None:
        body = json.dumps(
            {
                "success": False,
                "error": "Wrong code",
                "error_params": {"count": 2},
                "status": status,
                "sys_message": "ERROR_MESSAGE_WRONG_CODE",
            }
        ).encode()

        error = decode_error(status, body)

        assert type(error) is error_class
        assert error.status == status
        assert error.error == "Wrong code"
        assert error.sys_message == "ERROR_MESSAGE_WRONG_CODE"
        assert error.error_params == {"count": 2}
        assert error.retry_after is None
        assert (error.method, error.path) == ("GET", CHANNELS_PATH)
        assert str(error) == (
            f"kod.mobi answered {status} ERROR_MESSAGE_WRONG_CODE: Wrong code"
            " (GET /session/channels)"
        )

    def test_a_documented_404_envelope_is_a_not_found_error(self) -> None:
        error = decode_error(404, NOT_FOUND_ENVELOPE)

        assert isinstance(error, NotFoundError)
        assert error.sys_message == "ERROR_MESSAGE_NOT_FOUND"
        assert error.error == "Session not found"
        assert error.error_params == {}

    def test_a_non_2xx_is_an_error_even_with_a_channels_body(self) -> None:
        error = decode_error(500, b"[" + OK_ITEM + b"]")

        assert type(error) is ServerError
        assert error.sys_message is None

    @pytest.mark.parametrize(
        ("body", "error", "sys_message", "error_params"),
        [
            (b'{"success": false, "sys_message": "ERROR_BLOCKED"}', None, "ERROR_BLOCKED", {}),
            (b'{"error": "Blocked", "error_params": [1, 2]}', "Blocked", None, {}),
            (b'{"error": "", "sys_message": "ERROR_BLOCKED"}', None, "ERROR_BLOCKED", {}),
            (b'  {"error": 42, "sys_message": null}', "42", None, {}),
        ],
    )
    def test_a_partial_envelope_fills_what_it_has(
        self,
        body: bytes,
        error: str | None,
        sys_message: str | None,
        error_params: dict[str, object],
    ) -> None:
        decoded = decode_error(400, body)

        assert type(decoded) is BadRequestError
        assert (decoded.error, decoded.sys_message) == (error, sys_message)
        assert decoded.error_params == error_params

    @pytest.mark.parametrize(
        "headers",
        [{"Retry-After": "3"}, {"retry-after": "3"}, {"RETRY-AFTER": "3"}, {"rEtRy-AfTeR": "3"}],
    )
    def test_a_429_carries_retry_after_whatever_the_header_casing(
        self, headers: dict[str, str]
    ) -> None:
        body = b'{"success": false, "error": "Too many", "sys_message": "ERROR_MESSAGE_ATTEMPT"}'

        error = decode_error(429, body, headers)

        assert isinstance(error, RateLimitError)
        assert error.retry_after == 3.0
        assert error.sys_message == "ERROR_MESSAGE_ATTEMPT"
        assert str(error).endswith("; Retry-After 3 s")

    def test_retry_after_is_added_to_the_message_not_put_in_its_place(self) -> None:
        body = b'{"success": false, "error": "Too many", "sys_message": "ERROR_MESSAGE_ATTEMPT"}'

        error = decode_error(429, body, {"Retry-After": "3"})

        assert str(error) == (
            "kod.mobi answered 429 ERROR_MESSAGE_ATTEMPT: Too many (GET /session/channels)"
            "; Retry-After 3 s"
        )

    def test_an_http_date_retry_after_is_read_against_the_real_clock(self) -> None:
        # status_error passes no `now`: this is the path every real answer takes.
        when = datetime.now(timezone.utc) + timedelta(seconds=120)
        headers = {"Retry-After": email.utils.format_datetime(when, usegmt=True)}

        error = status_error(503, headers, b"", path=CHANNELS_PATH)

        assert type(error) is ServerError
        # Whole seconds on the wire, plus however long this test took to get here.
        assert error.retry_after is not None
        assert 60 < error.retry_after <= 120
        assert f"; Retry-After {error.retry_after:g} s" in str(error)

    def test_an_http_date_retry_after_in_the_past_means_retry_now(self) -> None:
        when = datetime.now(timezone.utc) - timedelta(hours=1)
        headers = {"Retry-After": email.utils.format_datetime(when, usegmt=True)}

        assert status_error(429, headers, b"").retry_after == 0.0

    def test_a_503_with_retry_after_carries_it_too(self) -> None:
        error = decode_error(503, b"", {"Retry-After": "1.5"})

        assert type(error) is ServerError
        assert error.retry_after == 1.5

    def test_an_unparseable_retry_after_is_none(self) -> None:
        error = decode_error(429, b"", {"Retry-After": "later"})

        assert type(error) is RateLimitError
        assert error.retry_after is None
        assert "Retry-After" not in str(error)

    def test_an_nginx_html_page_becomes_a_short_readable_error(self) -> None:
        error = decode_error(502, NGINX_502)

        assert type(error) is ServerError
        assert error.error == "502 Bad Gateway"
        assert error.sys_message is None
        assert error.error_params == {}
        assert str(error) == "kod.mobi answered 502: 502 Bad Gateway (GET /session/channels)"

    def test_html_without_a_title_is_reduced_to_its_text(self) -> None:
        body = b"<html><body><h1>Service\n  Unavailable</h1><p>Try &amp; retry</p></body></html>"

        error = decode_error(503, body)

        assert error.error == "Service Unavailable Try & retry"

    def test_a_long_body_is_cut_to_a_short_excerpt(self) -> None:
        error = decode_error(500, b"x" * 100_000)

        assert error.error is not None
        assert len(error.error) == 200
        assert error.error.endswith("…")

    def test_a_body_of_exactly_200_characters_is_kept_whole(self) -> None:
        assert decode_error(500, b"y" * 200).error == "y" * 200

    def test_a_body_of_201_characters_loses_its_last_two_to_the_ellipsis(self) -> None:
        assert decode_error(500, b"y" * 201).error == "y" * 199 + "…"

    @pytest.mark.parametrize(
        "body",
        [
            b"<HTML><HEAD><TITLE>502 Bad Gateway</TITLE></HEAD><BODY>nginx</BODY></HTML>",
            b"<html><head><title>\n  502 Bad\n  Gateway\n</title></head><body>nginx</body>",
        ],
        ids=["upper-case", "multi-line"],
    )
    def test_a_title_in_capitals_or_over_several_lines_is_found(self, body: bytes) -> None:
        assert decode_error(502, body).error == "502 Bad Gateway"

    def test_a_plain_text_body_is_the_error(self) -> None:
        error = decode_error(503, b"upstream connect error or disconnect/reset before headers")

        assert error.error == "upstream connect error or disconnect/reset before headers"
        assert error.sys_message is None

    def test_a_json_body_that_is_not_the_envelope_is_kept_as_text(self) -> None:
        error = decode_error(500, b'{"message": "Internal Server Error"}')

        assert error.error == '{"message": "Internal Server Error"}'
        assert error.sys_message is None

    def test_a_broken_json_envelope_is_kept_as_text(self) -> None:
        error = decode_error(500, b'{"error": "cut off')

        assert error.error == '{"error": "cut off'
        assert error.sys_message is None

    def test_an_empty_body_leaves_the_fields_empty(self) -> None:
        error = decode_error(504, b"")

        assert type(error) is ServerError
        assert (error.error, error.sys_message, error.error_params) == (None, None, {})
        assert str(error) == "kod.mobi answered 504 (GET /session/channels)"

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_a_redirect_raises_naming_where_it_pointed(self, status: int) -> None:
        location = "https://evil.example/session/channels"

        error = decode_error(status, b"", {"Location": location})

        assert isinstance(error, RedirectError)
        assert error.status == status
        assert error.location == location
        assert repr(location) in str(error)
        assert "check base_url" in str(error)
        assert "not followed" in str(error)

    def test_a_redirect_keeps_the_envelope_fields(self) -> None:
        body = (
            b'{"success": false, "error": "Moved", "error_params": {"count": 2},'
            b' "sys_message": "ERROR_MOVED"}'
        )
        headers = {"location": "/elsewhere", "Retry-After": "4"}

        with pytest.raises(RedirectError) as info:
            decode_channels_response(302, headers, body, method="HEAD", path="/v2/channels")

        error = info.value
        assert error.location == "/elsewhere"
        assert (error.status, error.error, error.sys_message) == (302, "Moved", "ERROR_MOVED")
        assert error.error_params == {"count": 2}
        assert error.retry_after == 4.0
        assert (error.method, error.path) == ("HEAD", "/v2/channels")

    def test_a_redirect_without_location_has_none_and_says_so(self) -> None:
        error = decode_error(307, b"")

        assert isinstance(error, RedirectError)
        assert error.location is None
        assert str(error) == (
            "kod.mobi answered 307 to GET /session/channels, a redirect without Location; "
            "redirects are not followed so the API key stays with the configured host: "
            "check base_url"
        )

    def test_an_error_names_the_method_and_path_it_was_given(self) -> None:
        with pytest.raises(NotFoundError) as info:
            decode_channels_response(404, {}, NOT_FOUND_ENVELOPE, method="HEAD", path="/v2/x")

        assert (info.value.method, info.value.path) == ("HEAD", "/v2/x")
        assert str(info.value).endswith("(HEAD /v2/x)")

    def test_status_error_defaults_to_a_get_with_no_path(self) -> None:
        error = status_error(500, {}, b"")

        assert (error.method, error.path) == ("GET", "")

    def test_the_request_path_in_the_message_has_no_session_id(self) -> None:
        with pytest.raises(NotFoundError) as info:
            decode_channels_response(404, {}, NOT_FOUND_ENVELOPE, path="/session/channels")

        assert ULID not in str(info.value)
        assert info.value.path == "/session/channels"


class TestLoadJson:
    @pytest.mark.parametrize(
        "body",
        [
            b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
            b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH,
            # Brackets inside strings do not nest, escaped quotes or not.
            b'["' + b"[" * 100 + b'"]',
            b'["\\"' + b"[" * 100 + b'"]',
            b'{"' + b"{" * 100 + b'": 1}',
            # Many siblings are wide, not deep.
            b"[" + b"[[]]," * 100 + b"[]]",
            # Exactly the limit, with enough brackets elsewhere that the scan runs.
            b"[" + b"[]," * 10 + b"[" * 63 + b"]" * 63 + b"]",
        ],
    )
    def test_json_up_to_the_depth_limit_is_read(self, body: bytes) -> None:
        assert load_json(body) == json.loads(body)

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
            b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
            b'[{"a":' * 33 + b"1" + b"}]" * 33,
            # An escaped backslash ends with the string: the brackets after it count.
            b'["\\\\", ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"]",
            # A string with brackets does not hide the real nesting after it.
            b'["[[[[", ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"]",
            # Closing a level and opening two more goes one past the limit.
            b"[" * 63 + b"[], [[]]" + b"]" * 63,
            b"[" + b"[]," * 10 + b"[" * 64 + b"]" * 64 + b"]",
            # Refused before parsing: an unclosed deep body is refused the same way.
            b"[" * 100_000,
        ],
    )
    def test_deeper_json_is_refused_before_it_is_parsed(self, body: bytes) -> None:
        with pytest.raises(ValueError, match=r"^JSON nested deeper than 64 levels$"):
            load_json(body)

    def test_a_success_body_nested_too_deep_says_so(self) -> None:
        error = validation_error(b"[" * 65 + b"]" * 65)

        assert str(error) == (
            "kod.mobi answered 200 to GET /session/channels with a body that is JSON nested "
            f"deeper than 64 levels: {'[' * 65 + ']' * 65!r}"
        )

    def test_a_success_body_that_is_not_json_says_so(self) -> None:
        assert str(validation_error(b"oops")) == (
            "kod.mobi answered 200 to GET /session/channels with a body that is not JSON: 'oops'"
        )


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Painted:
    colour: Colour


def links(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception chained to it."""
    exc: BaseException | None = error
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def shows_key(error: BaseException) -> bool:
    """Whether the key is in any text, argument or attribute of ``error``'s chain."""
    texts = []
    for exc in links(error):
        texts += [str(exc), repr(exc), *map(repr, vars(exc).values())]
    return any(KEY in text for text in texts)


class TestDecodeResponse:
    def test_a_success_becomes_the_model(self) -> None:
        body = json.dumps(
            {
                "session_id": ULID,
                "session_expired_at": "2026-11-30T06:43:00+00:00",
                "sent_to": "sms",
                "channels": [json.loads(OK_ITEM)],
            }
        ).encode()
        session = decode_response(200, {}, body, Session, method="POST", path="/c")

        assert isinstance(session, Session)
        assert session.session_id == ULID

    @pytest.mark.parametrize(
        ("model", "name"), [(Session, "Session"), (list[ManualChannel], "list[ManualChannel]")]
    )
    def test_a_body_that_does_not_fit_names_the_model(self, model: object, name: str) -> None:
        with pytest.raises(ResponseValidationError) as info:
            decode_response(200, {}, b'"text"', model, method="POST", path="/c")

        assert str(info.value).startswith(
            f"kod.mobi answered POST /c with {name} that do not fit the model: $: "
        )
        assert info.value.field_path == "$"

    def test_an_error_status_raises_its_error(self) -> None:
        with pytest.raises(NotFoundError) as info:
            decode_response(404, {}, NOT_FOUND_ENVELOPE, Session, method="POST", path="/c")

        assert info.value.sys_message == "ERROR_MESSAGE_NOT_FOUND"

    def test_a_failure_that_quotes_no_key_is_chained(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            decode_response(200, {}, b'{"colour": "blue"}', Painted, method="GET", path="/p")

        assert info.value.__cause__ is not None
        assert "'blue' is not a valid Colour" in str(info.value)

    def test_a_failure_that_quotes_the_key_is_masked_and_not_chained(self) -> None:
        body = json.dumps({"colour": KEY}).encode()
        with pytest.raises(ResponseValidationError) as info:
            decode_response(
                200, {}, body, Painted, method="GET", path="/p", redactor=Redactor([KEY])
            )

        assert str(info.value) == (
            "kod.mobi answered GET /p with Painted that do not fit the model: "
            "$.colour: '***' is not a valid Colour"
        )
        assert info.value.__cause__ is None
        assert not shows_key(info.value)

    def test_a_failure_the_converter_cannot_describe_names_its_type(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def cannot(exc: BaseException) -> tuple[str, str | None]:
            raise RuntimeError("no description")

        monkeypatch.setattr(_converter, "describe_error", cannot)
        with pytest.raises(ResponseValidationError) as info:
            decode_response(
                200,
                {},
                b'{"colour": "blue"}',
                Painted,
                method="GET",
                path="/p",
                redactor=Redactor([KEY]),
            )

        assert str(info.value) == (
            "kod.mobi answered GET /p with Painted that do not fit the model: ClassValidationError"
        )
        assert info.value.field_path is None


class TestKeysInAnswers:
    """A server that echoes the key: every text copied from its answer is masked."""

    def decode(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Any:
        return decode_channels_response(status, headers or {}, body, redactor=Redactor([KEY]))

    def test_an_error_envelope_that_echoes_the_key(self) -> None:
        body = json.dumps(
            {"error": f"bad key {KEY}", "sys_message": KEY, "error_params": {"key": KEY}}
        ).encode()
        with pytest.raises(AuthenticationError) as info:
            self.decode(401, body)

        error = info.value
        assert (error.error, error.sys_message, error.error_params) == (
            "bad key ***",
            "***",
            {"key": "***"},
        )
        assert not shows_key(error)

    def test_an_error_page_that_echoes_the_key(self) -> None:
        with pytest.raises(ServerError) as info:
            self.decode(502, f"<p>upstream refused key {KEY}</p>".encode())

        assert info.value.error == "upstream refused key ***"
        assert info.value.error_params == {}
        assert not shows_key(info.value)

    def test_a_redirect_to_a_url_with_the_key(self) -> None:
        with pytest.raises(RedirectError) as info:
            self.decode(302, b"", {"Location": f"https://evil.example/?k={KEY}"})

        assert info.value.location == "https://evil.example/?k=***"
        assert not shows_key(info.value)

    def test_a_success_body_that_is_not_json_and_holds_the_key(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            self.decode(200, b"\xff" + KEY.encode())

        assert str(info.value).endswith("with a body that is not JSON: '\ufffd***'")
        assert not shows_key(info.value)

    def test_a_success_body_of_the_wrong_shape_is_judged_with_the_redactor(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            self.decode(200, b'{"a": 1}')

        assert str(info.value) == (
            "kod.mobi answered GET /session/channels with channels that do not fit the model: "
            "$: expected a JSON array of channels, got an object"
        )
        assert info.value.field_path == "$"
        assert info.value.__cause__ is not None

    def test_a_parse_error_that_keeps_the_key_is_not_chained(self) -> None:
        # The JSON parser keeps the whole document on its error, as ``doc``.
        with pytest.raises(ResponseValidationError) as info:
            self.decode(200, b'{"key": "' + KEY.encode())

        assert info.value.__cause__ is None
        assert not shows_key(info.value)

    def test_a_parse_error_without_the_key_is_chained(self) -> None:
        with pytest.raises(ResponseValidationError) as info:
            self.decode(200, b'{"key": ')

        assert isinstance(info.value.__cause__, ValueError)


class UnreadableHeaders(Mapping[str, str]):
    """Headers that fail when read, as a broken transport's might."""

    def __getitem__(self, name: str) -> str:
        raise RuntimeError("unreadable")

    def get(self, name: str, default: object = None) -> Any:
        raise RuntimeError("unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        return 1


class TestUnreadableAnswers:
    @pytest.mark.parametrize(("status", "cls"), [(503, ServerError), (404, NotFoundError)])
    def test_an_answer_that_cannot_be_read_still_gets_its_status_class(
        self, status: int, cls: type[APIStatusError]
    ) -> None:
        error = status_error(status, UnreadableHeaders(), b"{}", method="POST", path="/x")

        assert type(error) is cls
        assert (error.status, error.method, error.path) == (status, "POST", "/x")
        assert str(error) == (
            f"kod.mobi answered {status} with an answer that could not be read (POST /x)"
        )

    def test_an_unreadable_redirect_is_a_redirect_without_location(self) -> None:
        error = status_error(302, UnreadableHeaders(), b"", method="HEAD", path="/y")

        assert isinstance(error, RedirectError)
        assert error.location is None
        assert (error.status, error.method, error.path) == (302, "HEAD", "/y")
        assert str(error) == "kod.mobi answered 302 with an answer that could not be read (HEAD /y)"


class TestEnvelopeFields:
    @pytest.mark.parametrize(
        ("value", "shown"), [(["a", "b"], "<array>"), ({"a": 1}, "<object>"), (42, "42")]
    )
    def test_a_field_that_is_not_text_is_described(self, value: object, shown: str) -> None:
        body = json.dumps({"error": value, "sys_message": "ERROR_X"}).encode()
        assert decode_error(400, body).error == shown

    @pytest.mark.parametrize(("length", "kept"), [(1000, "e" * 1000), (1001, "e" * 999 + "…")])
    def test_a_field_longer_than_a_thousand_characters_is_cut(self, length: int, kept: str) -> None:
        body = json.dumps({"error": "e" * length, "sys_message": "ERROR_X"}).encode()
        assert decode_error(400, body).error == kept
