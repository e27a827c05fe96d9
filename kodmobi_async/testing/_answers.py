# the Russian texts are Cyrillic on purpose
"""How the fake kod.mobi answers one request: a pure function of the request and state.

:func:`answer` takes a :class:`Call` (method, path, query, headers, body bytes) and the
:class:`~._state.Project`, and returns an :class:`Answer` (status, headers, body bytes).
It checks, in this order: the path (404 ``ERROR_NOT_FOUND``), the method (405
``ERROR_METHOD_NOT_ALLOWED``), the key (401 ``ERROR_UNAUTHORIZED``, 403
``ERROR_ACCESS_DENIED`` for a public key on a secret route), the challenge token when
the project has one and the route takes it (400 ``ERROR_CHALLENGE``), the body (400
``ERROR_BAD_REQUEST``), then the flow's own rules (:mod:`._state`).

It is written from the API reference and FLOW-SPEC alone and shares no code with the
client, so a misreading in one does not hide the same misreading in the other.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._envelope import (
    BAD_KEY,
    BAD_SESSION_ID,
    JSON_CONTENT_TYPE,
    MISSING_KEY,
    UNKNOWN_PATH,
    UNKNOWN_SESSION,
    WRONG_METHOD,
    Refusal,
    envelope,
    preferred_language,
)
from ._state import (
    ULID,
    Problem,
    Project,
    bad_request,
    dump,
    is_code,
    is_http_url,
    is_phone,
    is_recipient,
    not_found,
)

CHANNELS_PATH = "/session/channels"
CREATE_PATH = "/session/create"
SEND_PATH = "/session/send"
CHECK_PATH = "/v2/check"
VERIFY_PATH = "/verify"
MANUAL_CHANNELS_PATH = "/manual/channels"
MANUAL_SEND_PATH = "/manual/send"
SETTINGS_PATH = "/v2/settings"

_ACCESS_DENIED = Problem(
    403,
    "ERROR_ACCESS_DENIED",
    en="This call needs the secret key",
    ru="Для этого запроса нужен секретный ключ",
)
_CHALLENGE = Problem(
    400,
    "ERROR_CHALLENGE",
    en="The challenge token is missing or wrong",
    ru="Токен проверки отсутствует или неверен",
)


@attrs.frozen(kw_only=True)
class Call:
    """One request, as the answer logic sees it.

    Args:
        method: The HTTP method.
        path: The path without the query string.
        query: The query parameters (the first value of a repeated one).
        headers: The request headers; lookups must ignore case (aiohttp's do).
        body: The raw request body.
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(hash=False)
    headers: Mapping[str, str] = attrs.field(hash=False)
    body: bytes = b""

    @property
    def language(self) -> str:
        """The envelope language the request asks for (``en`` or ``ru``)."""
        return preferred_language(self.headers.get("Accept-Language"))


@attrs.frozen
class Answer:
    """One response: status, headers and body bytes."""

    status: int
    body: bytes
    headers: Mapping[str, str] = attrs.field(hash=False, factory=dict)


_Handler = Callable[[Call, Mapping[str, Any], Project, float], Any]


@attrs.frozen
class _Route:
    method: str
    secret: bool
    challenged: bool
    handler: _Handler


def json_document(body: bytes) -> Any:
    """Parse a request body, or return None when it is not JSON.

    Args:
        body: The raw body.

    Returns:
        The parsed document; None for an empty or invalid body.
    """
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        return None


def session_id_of(call: Call) -> str | None:
    """Find the session a request is about: ``?session_id=`` or the body's field.

    Args:
        call: The request.

    Returns:
        The id exactly as sent, or None when there is none (or it is not a string).
    """
    session_id = call.query.get("session_id")
    if session_id is not None or not call.body:
        return session_id
    document = json_document(call.body)
    if isinstance(document, dict):
        value = document.get("session_id")
        if isinstance(value, str):
            return value
    return None


def answer(call: Call, project: Project, now: float) -> Answer:
    """Answer a request the way kod.mobi would (as FLOW-SPEC reads it).

    Args:
        call: The request.
        project: The fake project's state; the flow routes change it.
        now: The fake's monotonic clock.

    Returns:
        The answer to send.
    """
    route = _ROUTES.get(call.path)
    if route is None:
        return refusal(call, UNKNOWN_PATH)
    if call.method != route.method:
        return refusal(call, WRONG_METHOD, {"Allow": route.method})
    key = call.headers.get("x-api-key")
    if key is None:
        return refusal(call, MISSING_KEY)
    try:
        if key not in project.secret_keys:
            if key not in project.public_keys:
                return refusal(call, BAD_KEY)
            if route.secret:
                raise _ACCESS_DENIED
        if route.challenged:
            _check_challenge(call, project)
        document: Mapping[str, Any] = {}
        if route.method == "POST":
            parsed = json_document(call.body)
            if not isinstance(parsed, dict):
                problem = bad_request("body", "a JSON object", "JSON-объект")
                raise problem
            document = parsed
        result = route.handler(call, document, project, now)
    except Problem as problem:
        body = envelope(
            problem.status, problem.sys_message, problem.texts[call.language], problem.params
        )
        return Answer(problem.status, body, {"Content-Type": JSON_CONTENT_TYPE})
    if isinstance(result, Refusal):
        return refusal(call, result)
    body = result if isinstance(result, bytes) else dump(result)
    return Answer(200, body, {"Content-Type": JSON_CONTENT_TYPE})


def refusal(call: Call, refused: Refusal, headers: Mapping[str, str] | None = None) -> Answer:
    """Answer with one of the fake's fixed refusals, in the request's language.

    Args:
        call: The request.
        refused: The refusal.
        headers: Extra headers (``Allow``, ``Retry-After``).

    Returns:
        The answer.
    """
    return Answer(
        refused.status,
        refused.bodies[call.language],
        {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


def _check_challenge(call: Call, project: Project) -> None:
    settings = project.flow.settings
    if settings.challenge_token is None:
        return
    token = call.headers.get(settings.challenge_header)
    if token is None or not secrets.compare_digest(token, settings.challenge_token):
        raise _CHALLENGE


def _field(
    document: Mapping[str, Any],
    name: str,
    valid: Callable[[Any], bool],
    expected: tuple[str, str],
    *,
    required: bool = True,
) -> Any:
    if name not in document:
        if required:
            raise bad_request(name, *expected)
        return None
    value = document[name]
    if not valid(value):
        raise bad_request(name, *expected)
    return value


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_ulid(value: object) -> bool:
    return isinstance(value, str) and ULID.fullmatch(value) is not None


def _is_provider_id(value: object) -> bool:
    return type(value) is int and value >= 1


_TO = ("an E.164 phone or an email address", "телефон в формате E.164 или email")
_TYPE = ("a channel type (a non-empty string)", "тип канала (непустая строка)")
_SESSION_ID = ("a ULID", "ULID")
_CODE = ("4 to 6 digits", "от 4 до 6 цифр")


def _channels(call: Call, _document: Mapping[str, Any], project: Project, now: float) -> Any:
    session_id = call.query.get("session_id")
    if session_id is None:
        return project.channels.body
    if ULID.fullmatch(session_id) is None:
        return BAD_SESSION_ID
    registered = project.registered.get(session_id)
    if registered is not None:
        return registered.body
    session = project.flow.sessions.get(session_id)
    # Expired and closed sessions get the same 404 as unknown ones here, as before the
    # flow existed; /session/send and /v2/check tell expiry apart.
    if session is None or session.closed or session.expired(now):
        return UNKNOWN_SESSION
    return project.flow.channels_of(session, now)


def _create(_call: Call, document: Mapping[str, Any], project: Project, now: float) -> Any:
    to = _field(document, "to", is_recipient, _TO)
    channel_type = _field(document, "type", _is_name, _TYPE, required=False)
    send = _field(
        document,
        "send",
        lambda v: isinstance(v, bool),
        ("true or false", "true или false"),
        required=False,
    )
    flow = project.flow
    session, sent_to = flow.create(
        to, channel_type, send=send is not False, project=project.channels.channels, now=now
    )
    return {
        "session_id": session.session_id,
        "session_expired_at": project.wall_time(session.expires_at),
        "sent_to": sent_to,
        "channels": flow.channels_of(session, now),
    }


def _send(_call: Call, document: Mapping[str, Any], project: Project, now: float) -> Any:
    session_id = _field(document, "session_id", _is_ulid, _SESSION_ID)
    channel_type = _field(document, "type", _is_name, _TYPE)
    flow = project.flow
    session = flow.send(session_id, channel_type, now)
    return {
        "session_id": session.session_id,
        "session_expired_at": project.wall_time(session.expires_at),
        "channel": flow.channel_of(session, channel_type, now),
    }


def _check(_call: Call, document: Mapping[str, Any], project: Project, now: float) -> Any:
    session_id = _field(document, "session_id", _is_ulid, _SESSION_ID)
    code = _field(document, "code", is_code, _CODE)
    token, is_test = project.flow.check(session_id, code, now)
    return {"verify_token": token, "is_test": is_test}


def _verify(_call: Call, document: Mapping[str, Any], project: Project, _now: float) -> Any:
    token = _field(document, "verify_token", _is_name, ("a verify token", "токен проверки"))
    to = project.flow.verify(token)
    return {"to": to, "phone": to} if is_phone(to) else {"to": to}


def _manual_channels(
    _call: Call, _document: Mapping[str, Any], project: Project, _now: float
) -> Any:
    return list(project.flow.manual_channels)


def _manual_send(_call: Call, document: Mapping[str, Any], project: Project, now: float) -> Any:
    to = _field(document, "to", is_recipient, _TO)
    channel = _field(document, "channel", _is_name, _TYPE)
    provider_id = _field(
        document, "provider_id", _is_provider_id, ("an int >= 1", "целое >= 1"), required=False
    )
    code = _field(document, "code", is_code, _CODE, required=False)
    callback_url = _field(
        document, "callback_url", is_http_url, ("an http(s) URL", "http(s) URL"), required=False
    )
    delivery = project.flow.manual_send(
        to, channel, provider_id=provider_id, code=code, callback_url=callback_url, now=now
    )
    return {
        "message": "Message queued for delivery",
        # Opaque on purpose: the real service encrypts the code with the secret key, in
        # a format the reference marks unverified.
        "code": "fake_encrypted_" + secrets.token_hex(16),
        "message_id": delivery.message_id,
    }


def _settings(call: Call, _document: Mapping[str, Any], project: Project, now: float) -> Any:
    session_id = call.query.get("session_id")
    if session_id is not None:
        if ULID.fullmatch(session_id) is None:
            return BAD_SESSION_ID
        session = project.flow.sessions.get(session_id)
        known = session_id in project.registered or (
            session is not None and not session.expired(now)
        )
        if not known:
            raise not_found()
    settings = project.flow.settings
    challenge: dict[str, Any] = {"enabled": settings.challenge_token is not None}
    if settings.challenge_token is not None:
        challenge["api_key"] = settings.challenge_site_key
    return {
        "language": settings.language,
        "project": {"name": settings.project_name},
        "code": {"length": settings.code_length, "digits": True, "letters": False},
        "challenge": challenge,
    }


_ROUTES: Mapping[str, _Route] = {
    CHANNELS_PATH: _Route("GET", secret=False, challenged=False, handler=_channels),
    CREATE_PATH: _Route("POST", secret=False, challenged=True, handler=_create),
    SEND_PATH: _Route("POST", secret=False, challenged=True, handler=_send),
    CHECK_PATH: _Route("POST", secret=False, challenged=True, handler=_check),
    VERIFY_PATH: _Route("POST", secret=True, challenged=False, handler=_verify),
    MANUAL_CHANNELS_PATH: _Route("GET", secret=True, challenged=False, handler=_manual_channels),
    MANUAL_SEND_PATH: _Route("POST", secret=True, challenged=False, handler=_manual_send),
    SETTINGS_PATH: _Route("GET", secret=False, challenged=False, handler=_settings),
}

#: Every path the fake serves.
ROUTES: frozenset[str] = frozenset(_ROUTES)
