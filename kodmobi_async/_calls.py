"""What each kod.mobi call sends: pure request builders and argument checks.

One :class:`Request` per call, built here from the caller's arguments after checking
them, so a bad argument fails before anything is sent and the client only does I/O.
Each request also says which key it needs and how it may be retried (:class:`Resend`),
so the retry decision has what it needs in one place.

Paths that kod.mobi does not document (the code check, verify, settings) come from
:class:`Endpoints`, which a user can override without waiting for a release.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from ._errors import InvalidArgumentError
from ._protocol import mask_session_id, validate_session_id

__all__ = [
    "Endpoints",
    "Key",
    "Request",
    "Resend",
    "check_request",
    "create_request",
    "manual_channels_request",
    "manual_send_request",
    "send_request",
    "settings_request",
    "validate_code",
    "validate_to",
    "verify_request",
]

DEFAULT_CHALLENGE_HEADER = "X-CF-TURNSTILE-TOKEN"

# E.164: "+", a first digit 1-9, at most 15 digits in all (8 at least, in practice).
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
# Deliberately plain: one "@", no spaces, a dot in the domain. kod.mobi decides the rest.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_CODE = re.compile(r"[0-9]{4,6}")
_MAX_EMAIL = 254
_MAX_TOKEN = 4096
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


class Key(enum.Enum):
    """Which of the project's keys a call is sent with."""

    PUBLIC = "public"
    SECRET = "secret"  # noqa: S105 -- the name of a key kind, not a key


class Resend(enum.Enum):
    """How a call may be retried after a failure.

    ``ANY_FAILURE``: as today's ``/session/channels``: connection errors, timeouts and
    retryable statuses. ``IF_NOT_RECEIVED``: only when the request provably never
    reached kod.mobi (connection refused, DNS failure, connect timeout) or kod.mobi
    said it did not process it (429, 503); never after it may have been received, so a
    retry cannot send a second message or count a second wrong code.
    """

    ANY_FAILURE = "any failure"
    IF_NOT_RECEIVED = "if not received"


@attrs.frozen(kw_only=True)
class Endpoints:
    """The paths of kod.mobi's calls, relative to ``base_url``.

    The defaults are the documented paths, and for the three calls kod.mobi does not
    document, the paths its own JS client uses (``check``, ``settings``) or the name
    its docs give (``verify``). If kod.mobi serves one elsewhere, pass
    ``KodMobiClient(endpoints=Endpoints(check="/session/check"))``.

    Attributes:
        channels: ``GET``, a session's or the project's channels.
        create: ``POST``, create (or return) a session and send a code.
        send: ``POST``, send a code again over a channel.
        check: ``POST``, check the code a user typed (observed, not documented).
        verify: ``POST``, verify a ``verify_token`` with the secret key (named in the
            docs, path not documented).
        manual_channels: ``GET``, manual-mode channels and providers (secret key).
        manual_send: ``POST``, send a code your backend made (secret key).
        settings: ``GET``, the project's public settings (observed, not documented).
    """

    channels: str = "/session/channels"
    create: str = "/session/create"
    send: str = "/session/send"
    check: str = "/v2/check"
    verify: str = "/verify"
    manual_channels: str = "/manual/channels"
    manual_send: str = "/manual/send"
    settings: str = "/v2/settings"

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(Endpoints):
            path = getattr(self, field.name)
            if not isinstance(path, str) or not path.startswith("/") or "?" in path:
                msg = (
                    f"Endpoints.{field.name} must be a path starting with '/' and "
                    f"without a query, such as {field.default!r}; got {path!r}"
                )
                raise InvalidArgumentError(msg, argument=field.name)


@attrs.frozen(kw_only=True)
class Request:
    """One call as it goes on the wire, minus the host and the key's value.

    Attributes:
        method: ``GET`` or ``POST``.
        path: The path, from :class:`Endpoints`.
        query: The encoded query string without ``?``; empty for none.
        body: The JSON body, or ``None``.
        key: Which key the call needs.
        resend: How it may be retried.
        label: How log lines and errors name the call (session ids masked).
        challenge: The CAPTCHA token to send, if any.
    """

    method: str
    path: str
    query: str = ""
    body: bytes | None = None
    key: Key = Key.PUBLIC
    resend: Resend = Resend.ANY_FAILURE
    label: str
    challenge: str | None = attrs.field(default=None, repr=False)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def validate_to(to: object) -> str:
    """Check a destination: an E.164 phone or an email address.

    Raises:
        InvalidArgumentError: Neither, saying which form was expected.
    """
    if isinstance(to, str):
        if _E164.fullmatch(to):
            return to
        if len(to) <= _MAX_EMAIL and _EMAIL.fullmatch(to):
            return to
    expected = (
        "to must be a phone number in E.164 form (a '+', the country code and the "
        "number, digits only, such as '+79001234567') or an email address"
    )
    if not isinstance(to, str):
        msg = f"{expected}; got {type(to).__name__}"
    elif to.strip() != to or " " in to:
        msg = f"{expected}; got a value with spaces: remove them"
    elif to[:1].isdigit():
        msg = f"{expected}; got a number without '+': write it as '+{to}'"
    else:
        msg = f"{expected}; got {len(to)} characters that are neither"
    raise InvalidArgumentError(msg, argument="to")


def validate_code(code: object) -> str:
    """Check a one-time code: 4 to 6 digits, as a string.

    Raises:
        InvalidArgumentError: Not a string of 4 to 6 ASCII digits.
    """
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    expected = "code must be a string of 4 to 6 digits, such as '4821'"
    if isinstance(code, int) and not isinstance(code, bool):
        msg = f"{expected}; got an int: pass it as a string so leading zeros survive"
    elif isinstance(code, str):
        msg = f"{expected}; got {len(code)} characters"
    else:
        msg = f"{expected}; got {type(code).__name__}"
    raise InvalidArgumentError(msg, argument="code")


def _channel(value: object, argument: str) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str) and value and _HEADER_SAFE.fullmatch(value):
        return value
    msg = (
        f"{argument} must be a channel type such as 'sms', 'whatsapp', 'telegram' or "
        f"'email' (a ChannelType or its string); got {value!r}"
    )
    raise InvalidArgumentError(msg, argument=argument)


def _token(value: object, argument: str) -> str:
    if isinstance(value, str) and 0 < len(value) <= _MAX_TOKEN and _HEADER_SAFE.fullmatch(value):
        return value
    shown = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    msg = f"{argument} must be the non-empty token kod.mobi returned, without spaces; got {shown}"
    raise InvalidArgumentError(msg, argument=argument)


def _session_label(method: str, path: str, session_id: str) -> str:
    return f"{method} {path} session={mask_session_id(session_id)}"


def create_request(
    endpoints: Endpoints,
    to: object,
    *,
    type: object = None,  # kod.mobi's own name for the field
    send: object = True,
    challenge: str | None = None,
) -> Request:
    """``POST /session/create``. With ``send=True`` it delivers a message.

    Raises:
        InvalidArgumentError: A bad ``to``, ``type`` or ``send``.
    """
    payload: dict[str, Any] = {"to": validate_to(to)}
    if type is not None:
        payload["type"] = _channel(type, "type")
    if not isinstance(send, bool):
        msg = f"send must be True or False, got {send!r}"
        raise InvalidArgumentError(msg, argument="send")
    payload["send"] = send
    return Request(
        method="POST",
        path=endpoints.create,
        body=_json(payload),
        # Without send, create only returns the live session: safe to repeat.
        resend=Resend.IF_NOT_RECEIVED if send else Resend.ANY_FAILURE,
        label=f"POST {endpoints.create}",
        challenge=challenge,
    )


def send_request(
    endpoints: Endpoints,
    session_id: object,
    type: object,
    *,
    challenge: str | None = None,
) -> Request:
    """``POST /session/send``: delivers a message, so never retried once received."""
    sid = validate_session_id(session_id)
    body = _json({"session_id": sid, "type": _channel(type, "type")})
    return Request(
        method="POST",
        path=endpoints.send,
        body=body,
        resend=Resend.IF_NOT_RECEIVED,
        label=_session_label("POST", endpoints.send, sid),
        challenge=challenge,
    )


def check_request(
    endpoints: Endpoints, session_id: object, code: object, *, challenge: str | None = None
) -> Request:
    """The code check: a re-sent check could count as a second wrong attempt."""
    sid = validate_session_id(session_id)
    body = _json({"session_id": sid, "code": validate_code(code)})
    return Request(
        method="POST",
        path=endpoints.check,
        body=body,
        resend=Resend.IF_NOT_RECEIVED,
        label=_session_label("POST", endpoints.check, sid),
        challenge=challenge,
    )


def verify_request(endpoints: Endpoints, verify_token: object) -> Request:
    """Verify with the secret key: a token verifies once, so a lost answer is not retried."""
    body = _json({"verify_token": _token(verify_token, "verify_token")})
    return Request(
        method="POST",
        path=endpoints.verify,
        body=body,
        key=Key.SECRET,
        resend=Resend.IF_NOT_RECEIVED,
        label=f"POST {endpoints.verify}",
    )


def manual_channels_request(endpoints: Endpoints) -> Request:
    """``GET /manual/channels`` with the secret key."""
    path = endpoints.manual_channels
    return Request(method="GET", path=path, key=Key.SECRET, label=f"GET {path}")


def manual_send_request(
    endpoints: Endpoints,
    to: object,
    channel: object,
    *,
    provider_id: object = None,
    code: object = None,
    callback_url: object = None,
) -> Request:
    """``POST /manual/send`` with the secret key; delivers a message.

    Raises:
        InvalidArgumentError: A bad ``to``, ``channel``, ``provider_id``, ``code`` or
            ``callback_url``.
    """
    payload: dict[str, Any] = {"to": validate_to(to), "channel": _channel(channel, "channel")}
    if provider_id is not None:
        if isinstance(provider_id, bool) or not isinstance(provider_id, int) or provider_id < 1:
            msg = f"provider_id must be an int >= 1 from get_manual_channels(), got {provider_id!r}"
            raise InvalidArgumentError(msg, argument="provider_id")
        payload["provider_id"] = provider_id
    if code is not None:
        payload["code"] = validate_code(code)
    if callback_url is not None:
        payload["callback_url"] = _callback_url(callback_url)
    path = endpoints.manual_send
    return Request(
        method="POST",
        path=path,
        body=_json(payload),
        key=Key.SECRET,
        resend=Resend.IF_NOT_RECEIVED,
        label=f"POST {path}",
    )


def _callback_url(value: object) -> str:
    if isinstance(value, str) and " " not in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in {"http", "https"} and parts.hostname:
            return value
    msg = (
        "callback_url must be an absolute http(s) URL where kod.mobi reports the "
        f"delivery, such as 'https://example.com/kodmobi'; got {_shown(value)}"
    )
    raise InvalidArgumentError(msg, argument="callback_url")


def _shown(value: object) -> str:
    return repr(value)[:80] if isinstance(value, str) else type(value).__name__


def settings_request(endpoints: Endpoints, session_id: object = None) -> Request:
    """The project's settings (observed path), for a session or for the project."""
    path = endpoints.settings
    if session_id is None:
        return Request(method="GET", path=path, label=f"GET {path}")
    sid = validate_session_id(session_id)
    return Request(
        method="GET",
        path=path,
        query=f"session_id={quote(sid)}",
        label=_session_label("GET", path, sid),
    )
