"""kod.mobi's wire protocol as pure functions: no sockets, no event loop, no aiohttp.

Everything here takes and returns plain values (strings, bytes, mappings), so the rules
of the API (what a valid session id is, how a request looks, how a status and a body
become channels or a typed error) are tested with bytes alone, and the client is left
with nothing but I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeGuard, TypeVar, get_origin
from urllib.parse import urlsplit

from . import _converter
from ._errors import (
    APIStatusError,
    ConfigurationError,
    InvalidSessionIdError,
    RedirectError,
    ResponseValidationError,
    status_error_class,
)
from ._models import SessionChannel
from ._redact import NO_SECRETS, Redactor

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "CHANNELS_PATH",
    "DEFAULT_BASE_URL",
    "LANGUAGES",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_SECONDS",
    "SECRET_KEY_ENV",
    "decode_channels_response",
    "decode_response",
    "is_positive_seconds",
    "load_json",
    "mask_session_id",
    "parse_retry_after",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_keys",
    "status_error",
    "validate_language",
    "validate_session_id",
]

T = TypeVar("T")

API_KEY_ENV = "KODMOBI_API_KEY"
SECRET_KEY_ENV = "KODMOBI_SECRET_KEY"  # noqa: S105 -- a variable name, not a key
BASE_URL_ENV = "KODMOBI_BASE_URL"
DEFAULT_BASE_URL = "https://api.kod.mobi"
CHANNELS_PATH = "/session/channels"
LANGUAGES = frozenset({"en", "ru"})
# Channel lists are a few hundred bytes; anything near this is not kod.mobi talking.
MAX_BODY_BYTES = 1024 * 1024
# A channel list nests three levels; an error envelope a few more. Deeper JSON is
# refused before parsing, so no answer can exhaust the interpreter's recursion limit.
MAX_JSON_DEPTH = 64
# The longest duration accepted for a deadline: one day. Longer is a mistake (and past
# what asyncio's timers and aiohttp's timeouts handle without overflowing).
MAX_SECONDS = 86_400.0

# Crockford base32 without I, L, O, U; the first character is at most 7 because a
# ULID is 128 bits and 26 * 5 = 130.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_EXCERPT_CHARS = 200
# The bytes that decide JSON nesting: brackets, and the quotes and backslashes that
# tell whether a bracket is inside a string. One class, so the scan is linear.
_JSON_STRUCTURE = re.compile(rb'[\[\]{}"\\]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE = 0x22
_BACKSLASH = 0x5C


def validate_session_id(session_id: object) -> str:
    """Check that ``session_id`` is a ULID and return it unchanged.

    Args:
        session_id: What the caller passed.

    Returns:
        The same string.

    Raises:
        InvalidSessionIdError: It is not a 26-character Crockford base32 ULID.
    """
    if isinstance(session_id, str) and len(session_id) == 26 and _ULID.fullmatch(session_id):
        return session_id
    raise InvalidSessionIdError(_session_id_problem(session_id), session_id=session_id)


def _session_id_problem(value: object) -> str:
    expected = (
        "a session id must be a ULID: 26 characters of Crockford base32 "
        "(0-9 and upper-case A-Z without I, L, O, U), first character 0-7, "
        "as returned by kod.mobi's session/create"
    )
    if not isinstance(value, str):
        return f"{expected}; got {type(value).__name__}"
    if value == "":
        return f"{expected}; got an empty string (pass None, or nothing, for no session)"
    if len(value) != 26:
        return f"{expected}; got {len(value)} characters: {mask_session_id(value)!r}"
    if _ULID.fullmatch(value.upper()):
        # Case-insensitive by the ULID spec, but one spelling per id keeps batch keys and
        # duplicate detection exact.
        return f"{expected}; got lower-case letters: pass session_id.upper()"
    bad = sorted({c for c in value if not re.fullmatch(r"[0-9A-HJKMNP-TV-Z]", c)})
    if bad:
        return f"{expected}; got characters outside the alphabet: {''.join(bad)!r}"
    return f"{expected}; got first character {value[0]!r}, which overflows 128 bits"


def mask_session_id(session_id: str) -> str:
    """Shorten a session id for logs: enough to correlate, not enough to replay.

    Args:
        session_id: Any string.

    Returns:
        ``"01HZX3…E5F6"`` for a ULID; short strings are masked whole.
    """
    if len(session_id) <= 10:
        return "…"
    return f"{session_id[:6]}…{session_id[-4:]}"


def resolve_keys(
    api_key: str | None, secret_key: str | None, environ: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The public and the secret key: each its argument, else its environment variable.

    A client may hold either or both; calls that need the missing one refuse to run.

    Raises:
        ConfigurationError: Neither key is set, or one is blank or not header-safe.
    """
    public = secret = None
    if api_key is not None or environ.get(API_KEY_ENV) is not None:
        public = resolve_api_key(api_key, environ)
    if secret_key is not None or environ.get(SECRET_KEY_ENV) is not None:
        secret = _checked_key(
            secret_key if secret_key is not None else environ.get(SECRET_KEY_ENV),
            "secret_key" if secret_key is not None else SECRET_KEY_ENV,
            "secret",
        )
    if public is None and secret is None:
        msg = (
            f"no kod.mobi API key: pass api_key=... or set the {API_KEY_ENV} environment "
            "variable (the project's public key, from user.kod.mobi → settings → api-key); "
            f"server-side calls (verify, manual mode) also take secret_key=... or "
            f"{SECRET_KEY_ENV}"
        )
        raise ConfigurationError(msg)
    return public, secret


def resolve_api_key(api_key: str | None, environ: Mapping[str, str]) -> str:
    """The key to send: the argument, else ``KODMOBI_API_KEY``.

    Raises:
        ConfigurationError: Neither is set, or the key is blank or not header-safe.
    """
    key = api_key if api_key is not None else environ.get(API_KEY_ENV)
    if key is None:
        msg = (
            f"no kod.mobi API key: pass api_key=... or set the {API_KEY_ENV} environment "
            "variable (the project's public key, from user.kod.mobi → settings → api-key)"
        )
        raise ConfigurationError(msg)
    return _checked_key(key, "api_key" if api_key is not None else API_KEY_ENV, "API")


def _checked_key(key: object, where: str, kind: str) -> str:
    if not isinstance(key, str):
        msg = f"{where} must be a string, got {type(key).__name__}"
        raise ConfigurationError(msg)
    if not key.strip():
        msg = f"{where} is empty; set it to the project's kod.mobi {kind} key"
        raise ConfigurationError(msg)
    # Whitespace anywhere, not only at the ends: a key pasted with a space or a line
    # break in the middle is a copy error, and the server would only answer 401.
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        # Never echo the key itself, not even in this message.
        msg = f"the {kind} key contains whitespace or control characters; copy it again"
        raise ConfigurationError(msg)
    # Lone surrogates are what os.environ makes of bytes that are not UTF-8: no such
    # key can be sent, and encoding it would fail later with the key in the error.
    if any(0xD800 <= ord(c) <= 0xDFFF for c in key):
        msg = f"the {kind} key contains bytes that are not UTF-8 text; copy it again"
        raise ConfigurationError(msg)
    return key


def resolve_base_url(
    base_url: str | None,
    environ: Mapping[str, str],
    *,
    allow_http: bool = False,
    redactor: Redactor = NO_SECRETS,
) -> str:
    """The API root: the argument, else ``KODMOBI_BASE_URL``, else production.

    Args:
        base_url: What the caller passed.
        environ: Where to look for ``KODMOBI_BASE_URL``.
        allow_http: Accept ``http://`` for a host that is not loopback.
        redactor: Secrets to mask if the URL happens to contain them.

    Returns:
        The URL without a trailing slash, so paths can be appended.

    Raises:
        ConfigurationError: Not an absolute http(s) URL, or plain http to a remote host
            without ``allow_http``. The message never repeats the URL's credentials,
            query or fragment.
    """
    url = base_url if base_url is not None else environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    source = "base_url" if base_url is not None else BASE_URL_ENV
    if not isinstance(url, str):
        msg = f"{source} must be a string such as {DEFAULT_BASE_URL!r}, got {type(url).__name__}"
        raise ConfigurationError(msg)
    shown = redactor.text(shown_url(url))
    if "@" in url or "?" in url or "#" in url:
        msg = f"{source} must not carry credentials, a query or a fragment, got {shown!r}"
        raise ConfigurationError(msg)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- property access validates the port
    except ValueError as exc:
        # Credentials, query and fragment were refused above, so urlsplit's message can
        # quote only the host or the port.
        msg = f"{source} {shown!r} is not a valid URL: {redactor.text(str(exc))}"
        raise ConfigurationError(msg) from exc
    if parts.scheme not in {"http", "https"} or not host:
        msg = (
            f"{source} must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, got {shown!r}"
        )
        raise ConfigurationError(msg)
    if parts.scheme == "http" and not allow_http and not _is_loopback(host):
        msg = (
            f"{source} {shown!r} uses plain http to a non-loopback host, which would send "
            "the API key in clear text; use https, or pass allow_http=True if you really "
            "mean it"
        )
        raise ConfigurationError(msg)
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """``url`` as an error message may show it: credentials, query and fragment masked.

    Works on any string, parseable or not: everything up to the last ``@`` after the
    scheme is taken for credentials (a password may itself hold ``/``, ``?`` or ``#``),
    and everything after the first ``?`` or ``#`` that follows is masked.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        rest = rest[: cut + 1] + "***"
    return f"{scheme}{sep}{rest}"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        import ipaddress  # only to check a base_url, once per client

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_positive_seconds(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a usable duration: a number above zero and at most a day.

    Bools are refused; so are NaN, infinities and integers too large for a float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= MAX_SECONDS  # exact for ints of any size, False for NaN


def validate_language(language: str | None) -> str | None:
    """Check an ``Accept-Language`` choice.

    Raises:
        ConfigurationError: Not one of the languages kod.mobi speaks.
    """
    if language is None or language in LANGUAGES:
        return language
    msg = f"language must be one of {sorted(LANGUAGES)} (or None for the default), got {language!r}"
    raise ConfigurationError(msg)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Args:
        value: The header's value, or ``None`` when absent.
        now: The current time, for HTTP dates; defaults to the system clock.

    Returns:
        Non-negative finite seconds, or ``None`` when absent or unparseable (an
        HTTP date whose year or zone is out of range included).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        import email.utils  # error paths only; a costly import for every program

        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = now if now is not None else datetime.now(timezone.utc)
        seconds = (when - current).total_seconds()
    except Exception:  # absurd years and zones raise all sorts; unparseable
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _json_loader() -> Callable[[bytes], Any]:
    """orjson when installed (the ``fast`` extra), else the standard library.

    Both raise a ``ValueError`` for what is not JSON; orjson is also stricter (no
    ``NaN``, no integers past 64 bits, no lone surrogates), which only turns more
    malformed answers into ``ResponseValidationError``.
    """
    try:
        import orjson
    except ImportError:
        return json.loads
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


#: The parser every answer goes through; see :func:`_json_loader`.
_loads = _json_loader()


def load_json(body: bytes) -> Any:
    """Parse a JSON body whose nesting is at most :data:`MAX_JSON_DEPTH`.

    Args:
        body: The raw bytes of an answer.

    Returns:
        The decoded value.

    Raises:
        ValueError: Not UTF-8 JSON, or nested too deep (checked before parsing, so
            the parser's recursion stays bounded whatever the body).
    """
    # Each level of nesting needs an opening bracket, so a body with few of them cannot
    # be deep: the exact scan below runs only for bodies that might be.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        _check_depth(body)
    try:
        return _loads(body)
    except RecursionError as exc:  # unreachable after the depth check; kept as a belt
        msg = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        raise ValueError(msg) from exc


def _check_depth(body: bytes) -> None:
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_STRUCTURE.finditer(body):
        at = match.start()
        if at == escaped_at:
            continue
        byte = body[at]
        if in_string:
            if byte == _BACKSLASH:
                escaped_at = at + 1
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                msg = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
                raise ValueError(msg)
        elif byte in _CLOSERS:
            depth -= 1


def decode_channels_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "GET",
    path: str = CHANNELS_PATH,
    redactor: Redactor = NO_SECRETS,
) -> list[SessionChannel]:
    """Turn a ``/session/channels`` response into channels, or raise its error.

    Whatever the bytes, this returns channels or raises one of the two documented
    errors below; nothing else escapes.

    Args:
        status: HTTP status code.
        headers: Response headers (a case-insensitive mapping, or lower-case keys).
        body: The raw body.
        method: Request method, for error messages.
        path: Request path, for error messages.
        redactor: Secrets to mask in any text copied from the answer.

    Returns:
        The channels, in the order the service sent them.

    Raises:
        APIStatusError: A non-2xx status (the subclass matches the status).
        ResponseValidationError: A 2xx whose body is not a JSON array of channels.
    """
    return _decode(status, headers, body, method, path, redactor, _channels, "channels")


def decode_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    model: Any,
    *,
    method: str,
    path: str,
    redactor: Redactor = NO_SECRETS,
) -> Any:
    """Turn any call's response into its model (or ``list[Model]``), or raise its error.

    Args:
        status: HTTP status code.
        headers: Response headers.
        body: The raw body.
        model: What a success answer holds, such as ``Session`` or
            ``list[ManualChannel]``.
        method: Request method, for error messages.
        path: Request path, for error messages.
        redactor: Secrets to mask in any text copied from the answer.

    Returns:
        An instance of ``model``.

    Raises:
        APIStatusError: A non-2xx status (the subclass matches the status).
        ResponseValidationError: A 2xx whose body does not fit ``model``.
    """

    def structure(data: Any) -> Any:
        return _converter.structure(data, model)

    # list[Model] has a __name__ too, "list": spell generics out in full.
    name = (
        str(model).replace("kodmobi_async._models.", "")
        if get_origin(model) is not None
        else getattr(model, "__name__", None) or str(model)
    )
    return _decode(status, headers, body, method, path, redactor, structure, name)


def _channels(data: Any) -> list[SessionChannel]:
    # The legacy v1 API wrapped results as {"success": true, "data": ...}; accept that
    # shape too rather than fail if a deployment still answers with it.
    if type(data) is dict and data.get("success") is True and "data" in data:
        data = data["data"]
    return _converter.structure_channels(data)


def _decode(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    redactor: Redactor,
    structure: Callable[[Any], T],
    what: str,
) -> T:
    if not 200 <= status < 300:
        raise status_error(status, headers, body, method=method, path=path, redactor=redactor)
    try:
        data = load_json(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        why = str(exc) if "nested deeper" in str(exc) else "not JSON"
        msg = (
            f"kod.mobi answered {status} to {method} {path} with a body that is {why}: "
            f"{_excerpt(body, redactor)!r}"
        )
        invalid = ResponseValidationError(
            msg, status=status, field_path=None, method=method, path=path
        )
        # A UnicodeDecodeError's repr quotes the whole body: chain it only when safe.
        cause: Exception | None = exc if not redactor.exposes(exc) else None
    else:
        try:
            return structure(data)
        except Exception as exc:  # any failure to fit the model is the answer's
            cause = exc
            try:
                detail, field_path = _converter.describe_error(exc)
            except Exception:  # explaining must not fail where structuring did
                detail, field_path = f"{type(exc).__name__}", None
            msg = (
                f"kod.mobi answered {method} {path} with {what} that do not fit the model: {detail}"
            )
            invalid = ResponseValidationError(
                redactor.text(msg),
                status=status,
                field_path=None if field_path is None else redactor.text(field_path),
                method=method,
                path=path,
            )
        # Chained outside the except block, so the raw error (which may quote a value
        # from the body) is the cause only when it shows no secret.
        if redactor.exposes(cause):
            cause = None
    invalid.__cause__ = cause
    raise invalid


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "GET",
    path: str = "",
    redactor: Redactor = NO_SECRETS,
) -> APIStatusError:
    """Build the typed error for a non-success response.

    Reads kod.mobi's envelope (``success``, ``error``, ``error_params``, ``status``,
    ``sys_message``) when the body is one, and a short excerpt of anything else. Any
    answer is accepted: what cannot be read is left out, never raised.

    Args:
        status: HTTP status code.
        headers: Response headers.
        body: The raw body.
        method: Request method, for the message.
        path: Request path, for the message.
        redactor: Secrets to mask in any text copied from the answer.

    Returns:
        An :class:`APIStatusError` subclass chosen by ``status``.
    """
    try:
        return _status_error(status, headers, body, method, path, redactor)
    except Exception:  # an unreadable answer still gets its status's class
        cls = status_error_class(status)
        msg = f"kod.mobi answered {status} with an answer that could not be read ({method} {path})"
        if cls is RedirectError:
            return RedirectError(msg, location=None, status=status, method=method, path=path)
        return cls(msg, status=status, method=method, path=path)


def _status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    redactor: Redactor,
) -> APIStatusError:
    error: str | None = None
    sys_message: str | None = None
    error_params: dict[str, Any] = {}
    envelope = _envelope(body)
    if envelope is not None:
        error = _opt_str(envelope.get("error"), redactor)
        sys_message = _opt_str(envelope.get("sys_message"), redactor)
        params = envelope.get("error_params")
        if isinstance(params, dict):
            error_params = redactor.data(params)
    elif body:
        error = _excerpt(body, redactor) or None
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    cls = status_error_class(status)
    what = f"kod.mobi answered {status}"
    if sys_message:
        what += f" {sys_message}"
    if error:
        what += f": {error}"
    msg = f"{what} ({method} {path})"
    if cls is RedirectError:
        location = _header(headers, "location")
        if location is not None:
            location = redactor.text(location)
        where = f"redirecting to {location!r}" if location else "a redirect without Location"
        msg = (
            f"kod.mobi answered {status} to {method} {path}, {where}; redirects are not "
            "followed so the API key stays with the configured host: check base_url"
        )
        return RedirectError(
            msg,
            location=location,
            status=status,
            error=error,
            sys_message=sys_message,
            error_params=error_params,
            retry_after=retry_after,
            method=method,
            path=path,
        )
    if retry_after is not None:
        msg += f"; Retry-After {retry_after:g} s"
    return cls(
        msg,
        status=status,
        error=error,
        sys_message=sys_message,
        error_params=error_params,
        retry_after=retry_after,
        method=method,
        path=path,
    )


def _envelope(body: bytes) -> dict[str, Any] | None:
    if body.lstrip()[:1] != b"{":
        return None
    try:
        data = load_json(body)
    except ValueError:
        return None
    if type(data) is not dict or not ({"error", "sys_message"} & data.keys()):
        return None
    return data


_MAX_FIELD_CHARS = 1000


def _opt_str(value: object, redactor: Redactor) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        try:
            text = str(value)
        except ValueError:  # an int past the interpreter's digit limit
            text = f"<a number of {value.bit_length()} bits>" if isinstance(value, int) else ""
    else:
        # A list or object where text belongs: say what it was, not its (maybe huge) repr.
        text = f"<{_json_type(value)}>"
    text = redactor.text(text)
    if len(text) > _MAX_FIELD_CHARS:
        text = text[: _MAX_FIELD_CHARS - 1] + "…"
    return text


def _json_type(value: object) -> str:
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "value"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # Plain dicts from tests or other transports may keep the server's casing.
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def _excerpt(body: bytes, redactor: Redactor = NO_SECRETS) -> str:
    text = body[: _EXCERPT_CHARS * 8].decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    # Masked before shortening, so a cut can never leave part of a secret behind.
    import html  # error paths only

    text = redactor.text(" ".join(html.unescape(text).split()))
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 1] + "…"
    return text
