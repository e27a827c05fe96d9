# ruff: noqa: RUF001  # the Russian texts are Cyrillic on purpose
"""What the fake kod.mobi remembers, and the rules of the one-time-code flow.

Plain classes over a monotonic ``now`` the caller passes in: no I/O, no aiohttp, no lock
(the server holds its own around every call). A broken rule raises :class:`Problem`,
which the answer layer turns into kod.mobi's error envelope.

The rules (FLOW-SPEC, issue 10) in one place:

- a session lives :data:`SESSION_LIFETIME_SECONDS`; one live session per ``to``, which
  ``create`` returns instead of making another;
- every delivery starts a :data:`COOLDOWN_SECONDS` cool-down on its channel for that
  ``to``, shown as the channel's ``timeout``;
- :data:`MAX_WRONG_ATTEMPTS` wrong codes lock a session's checks; a correct check closes
  the session and issues a verify token, which verifies once.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

SESSION_LIFETIME_SECONDS = 180.0
COOLDOWN_SECONDS = 60
MAX_WRONG_ATTEMPTS = 3

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Upper case only, as the client insists: one spelling per id, so the fake never answers
# an id the client would refuse to send.
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
_CODE = re.compile(r"[0-9]{4,6}")
_EMAIL_MAX_LENGTH = 254
_EMAIL_CHANNEL = "email"

_KNOWN_CHANNELS: Mapping[str, tuple[str, str]] = {
    "whatsapp": ("WhatsApp", "https://wa.me/79001234567"),
    "telegram": ("Telegram", "https://t.me/kodmobi_bot"),
    "sms": ("SMS", "https://kod.mobi"),
    "email": ("Email", "https://kod.mobi"),
}


class Problem(Exception):  # noqa: N818 -- a value the answer layer renders, not a bug
    """A broken rule, as kod.mobi would report it.

    Args:
        status: The HTTP status.
        sys_message: The machine-readable code.
        en: The English ``error`` text.
        ru: The Russian ``error`` text.
        params: The envelope's ``error_params``.
    """

    def __init__(
        self,
        status: int,
        sys_message: str,
        *,
        en: str,
        ru: str,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(sys_message)
        self.status = status
        self.sys_message = sys_message
        self.texts = {"en": en, "ru": ru}
        self.params = dict(params or {})


def bad_request(field: str, expected: str, expected_ru: str) -> Problem:
    """Build the 400 ``ERROR_BAD_REQUEST`` for one field of a request body.

    Args:
        field: The field's wire name; also sent as ``error_params.field``.
        expected: What the field must be, in English.
        expected_ru: The same in Russian.

    Returns:
        The problem to raise.
    """
    return Problem(
        400,
        "ERROR_BAD_REQUEST",
        en=f"Invalid {field}: expected {expected}",
        ru=f"Некорректное поле {field}: ожидается {expected_ru}",
        params={"field": field},
    )


def not_found() -> Problem:
    """Build the 404 ``ERROR_MESSAGE_NOT_FOUND`` for an unknown session or token.

    Returns:
        The problem to raise.
    """
    return Problem(404, "ERROR_MESSAGE_NOT_FOUND", en="Session not found", ru="Сессия не найдена")


def new_session_id() -> str:
    """Make a fresh random session id.

    Returns:
        A ULID of 26 upper-case Crockford base32 characters, a millisecond timestamp of
        now followed by 80 random bits.
    """
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def checked_session_id(session_id: object) -> str:
    """Check a session id handed to one of the fake's methods.

    Args:
        session_id: The id.

    Returns:
        The same id.

    Raises:
        ValueError: It is not an upper-case ULID.
    """
    if not isinstance(session_id, str) or ULID.fullmatch(session_id) is None:
        msg = (
            "session_id must be a ULID (26 upper-case Crockford base32 characters), "
            f"got {session_id!r}"
        )
        raise ValueError(msg)
    return session_id


def is_phone(to: str) -> bool:
    """Tell whether ``to`` is an E.164 phone number (``+``, then 8 to 15 digits)."""
    return _PHONE.fullmatch(to) is not None


def is_email(to: str) -> bool:
    """Tell whether ``to`` is an email address as FLOW-SPEC defines one.

    One ``@``, a non-empty local part, a domain of at least two non-empty dotted labels,
    no whitespace, at most 254 characters.
    """
    if len(to) > _EMAIL_MAX_LENGTH or to.count("@") != 1 or any(c.isspace() for c in to):
        return False
    local, domain = to.split("@")
    labels = domain.split(".")
    return bool(local) and len(labels) >= 2 and all(labels)


def is_recipient(value: object) -> bool:
    """Tell whether ``value`` is a valid ``to``: an E.164 phone or an email address."""
    return isinstance(value, str) and (is_phone(value) or is_email(value))


def is_code(value: object) -> bool:
    """Tell whether ``value`` is a code kod.mobi checks: 4 to 6 ASCII digits."""
    return isinstance(value, str) and _CODE.fullmatch(value) is not None


def is_http_url(value: object) -> bool:
    """Tell whether ``value`` is an absolute http(s) URL."""
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def fits(channel_type: str, to: str) -> bool:
    """Tell whether a channel can reach ``to``.

    An email address is reached by the ``email`` channel only; a phone by every other
    type, unknown ones included (this fake's assumption).
    """
    return (channel_type == _EMAIL_CHANNEL) == is_email(to)


def checked_channel(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Complete and check one session channel given as a mapping, keeping extra fields.

    Args:
        spec: At least ``type``; ``name``, ``is_active`` (True), ``timeout`` (0),
            ``image_url`` and ``link`` are filled in when missing.

    Returns:
        A fresh, complete channel dict.

    Raises:
        TypeError: ``spec`` is not a mapping or a field has the wrong type.
        ValueError: ``type`` is missing or empty, or ``timeout`` is not 0 to 60.
    """
    if not isinstance(spec, Mapping):
        msg = f"a channel must be a mapping, got {spec!r}"
        raise TypeError(msg)
    kind = spec.get("type")
    if not isinstance(kind, str) or not kind:
        msg = f"a channel needs a non-empty string 'type', got {spec!r}"
        raise ValueError(msg)
    name, link = _KNOWN_CHANNELS.get(kind, (kind.title(), "https://kod.mobi"))
    channel: dict[str, Any] = {
        "name": name,
        "type": kind,
        "is_active": True,
        "timeout": 0,
        "image_url": f"https://kod.mobi/static/channels/{kind}.svg",
        "link": link,
    }
    channel.update(spec)
    for field, kind_of in (("name", str), ("is_active", bool), ("image_url", str), ("link", str)):
        _check_field(channel, field, kind_of)
    timeout = channel["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 60:
        msg = (
            f"channel 'timeout' must be an int from 0 to 60, got {timeout!r}; "
            "serve invalid data with Fault.body(...)"
        )
        raise ValueError(msg)
    return channel


def _check_field(channel: Mapping[str, Any], field: str, kind: type) -> None:
    value = channel[field]
    if not isinstance(value, kind):
        msg = (
            f"channel {field!r} must be {kind.__name__}, got {value!r}; "
            "serve invalid data with Fault.body(...)"
        )
        raise TypeError(msg)


def checked_channels(specs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Check a channel list (see :func:`checked_channel`).

    Args:
        specs: The channels.

    Returns:
        The complete channels.

    Raises:
        TypeError: ``specs`` is one mapping, or a channel is wrongly typed.
        ValueError: A channel is invalid.
    """
    if isinstance(specs, Mapping):
        msg = "channels must be a list of channel mappings, not one mapping"
        raise TypeError(msg)
    return tuple(checked_channel(spec) for spec in specs)


def default_manual_channels() -> list[dict[str, Any]]:
    """Return the manual-mode channels a fake project starts with.

    Returns:
        Fresh dicts: SMS with a system and a custom provider, and Email with one.
    """
    return [
        {
            "name": "SMS",
            "type": "sms",
            "providers": [
                {"id": 1, "name": "kod.mobi SMS", "type": "kodmobi", "is_system": True},
                {"id": 2, "name": "My SMS gateway", "type": "smsaero", "is_system": False},
            ],
        },
        {
            "name": "Email",
            "type": "email",
            "providers": [{"id": 3, "name": "kod.mobi mail", "type": "smtp", "is_system": True}],
        },
    ]


def checked_manual_channels(specs: Iterable[object]) -> tuple[dict[str, Any], ...]:
    """Check a manual-mode channel list.

    Args:
        specs: Mappings with ``name`` and ``type`` strings and ``providers``, a list of
            mappings with ``id`` (int >= 1, unique), ``name``, ``type`` and ``is_system``.

    Returns:
        Deep copies of the channels.

    Raises:
        TypeError: A field is missing or wrongly typed.
        ValueError: A provider id is below 1 or used twice.
    """
    channels: list[dict[str, Any]] = []
    seen: set[int] = set()
    for spec in specs:
        if not isinstance(spec, Mapping) or not all(
            isinstance(spec.get(field), str) for field in ("name", "type")
        ):
            msg = f"a manual channel needs string 'name' and 'type', got {spec!r}"
            raise TypeError(msg)
        providers = []
        for provider in spec.get("providers", ()):
            provider_id = provider.get("id") if isinstance(provider, Mapping) else None
            if (
                not isinstance(provider, Mapping)
                or type(provider_id) is not int
                or not isinstance(provider.get("name"), str)
                or not isinstance(provider.get("type"), str)
                or not isinstance(provider.get("is_system"), bool)
            ):
                msg = (
                    "a provider needs 'id' (int), 'name' and 'type' (str) and "
                    f"'is_system' (bool), got {provider!r}"
                )
                raise TypeError(msg)
            if provider_id < 1 or provider_id in seen:
                msg = f"provider ids must be unique ints >= 1, got {provider_id!r} again"
                raise ValueError(msg)
            seen.add(provider_id)
            providers.append(dict(provider))
        channels.append({**spec, "providers": providers})
    return tuple(channels)


@attrs.frozen(kw_only=True)
class Delivery:
    """One message the fake "delivered": nothing is sent, it is only recorded.

    Args:
        to: The recipient, as given.
        channel: The channel type it went over.
        code: The code in clear text.
        at: The fake's clock when it was sent (``time.monotonic()`` unless the fake was
            given a ``clock``).
        session_id: The session it belongs to; None for ``/manual/send``.
        provider_id: The ``provider_id`` of a ``/manual/send``, else None.
        callback_url: The ``callback_url`` of a ``/manual/send``, else None.
        message_id: The ``message_id`` answered by ``/manual/send``, else None.
    """

    to: str
    channel: str
    code: str
    at: float
    session_id: str | None = None
    provider_id: int | None = None
    callback_url: str | None = None
    message_id: int | None = None


@attrs.define(kw_only=True)
class Settings:
    """The project settings ``GET /v2/settings`` reports, and the challenge it enforces."""

    language: str = "en"
    project_name: str = "Fake project"
    code_length: int = 4
    challenge_token: str | None = None
    challenge_site_key: str = "fake-turnstile-site-key"
    challenge_header: str = "X-CF-TURNSTILE-TOKEN"


@attrs.define(kw_only=True)
class FlowSession:
    """A session made by ``/session/create``: mutable, owned by :class:`Flow`."""

    session_id: str
    to: str
    expires_at: float
    channels: tuple[dict[str, Any], ...]
    is_test: bool
    code: str | None = None
    wrong_attempts: int = 0
    closed: bool = False

    def expired(self, now: float) -> bool:
        """Tell whether the session's 3 minutes are over at ``now``."""
        return now >= self.expires_at


def _seconds_left(until: float, now: float) -> int:
    return max(0, math.ceil(until - now - 1e-9))


class Flow:
    """Sessions, codes, cool-downs, verify tokens and deliveries of one fake project.

    Args:
        settings: The project settings (code length, challenge).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[str, FlowSession] = {}
        self._live: dict[str, str] = {}
        self._cooldowns: dict[tuple[str, str], float] = {}
        self._last_channel: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self.test_recipients: dict[str, str] = {}
        self.deliveries: list[Delivery] = []
        self.manual_channels: tuple[dict[str, Any], ...] = checked_manual_channels(
            default_manual_channels()
        )
        self._message_ids = 0

    # -- sessions --------------------------------------------------------------------

    def live_session(self, to: str, now: float) -> FlowSession | None:
        """Return the session still open for ``to`` at ``now``, if any."""
        session_id = self._live.get(to)
        session = None if session_id is None else self.sessions.get(session_id)
        if session is None or session.closed or session.expired(now):
            return None
        return session

    def create(
        self,
        to: str,
        channel_type: str | None,
        *,
        send: bool,
        project: tuple[dict[str, Any], ...],
        now: float,
    ) -> tuple[FlowSession, str]:
        """Create a session for ``to`` or return the live one, and send a code if asked.

        Args:
            to: The recipient.
            channel_type: The channel to send over; the last one used for ``to``, else
                the project's first active channel that fits, when None.
            send: Whether to send a code now.
            project: The project's channels.
            now: The fake's clock.

        Returns:
            The session, and the channel type sent over (``"none"`` without a send).

        Raises:
            Problem: The channel is missing, inactive or cooling down.
        """
        fitting = tuple(channel for channel in project if fits(channel["type"], to))
        chosen = None
        if channel_type is not None:
            chosen = _require_channel(fitting, channel_type)
        elif send:
            chosen = self._default_channel(fitting, to)
        if send and chosen is not None:
            self._check_can_send(chosen, to, now)
        session = self.live_session(to, now)
        if session is None:
            session = FlowSession(
                session_id=new_session_id(),
                to=to,
                expires_at=now + SESSION_LIFETIME_SECONDS,
                channels=fitting,
                is_test=to in self.test_recipients,
            )
            if session.is_test:
                session.code = self.test_recipients[to]
            self.sessions[session.session_id] = session
            self._live[to] = session.session_id
        if not send or chosen is None:
            return session, "none"
        self._deliver(session, chosen["type"], now)
        return session, chosen["type"]

    def send(self, session_id: str, channel_type: str, now: float) -> FlowSession:
        """Send a new code for a session over a channel.

        Args:
            session_id: The session.
            channel_type: The channel.
            now: The fake's clock.

        Returns:
            The session.

        Raises:
            Problem: The session is unknown, closed or expired, or the channel is
                missing, inactive or cooling down.
        """
        session = self.open_session(session_id, now)
        channel = _require_channel(session.channels, channel_type)
        self._check_can_send(channel, session.to, now)
        self._deliver(session, channel_type, now)
        return session

    def open_session(self, session_id: str, now: float) -> FlowSession:
        """Return a session that still takes sends and checks.

        Raises:
            Problem: 404 for an unknown or closed session, 400 ``ERROR_SESSION_EXPIRED``
                for an expired one.
        """
        session = self.sessions.get(session_id)
        if session is None or session.closed:
            raise not_found()
        if session.expired(now):
            raise Problem(
                400, "ERROR_SESSION_EXPIRED", en="Session expired", ru="Срок действия сессии истёк"
            )
        return session

    def check(self, session_id: str, code: str, now: float) -> tuple[str, bool]:
        """Check a code; a correct one closes the session and issues a verify token.

        Args:
            session_id: The session.
            code: The code the user typed.
            now: The fake's clock.

        Returns:
            The verify token and whether the session is a test one.

        Raises:
            Problem: The session is unknown, closed, expired or locked, or the code is
                wrong.
        """
        session = self.open_session(session_id, now)
        if session.wrong_attempts >= MAX_WRONG_ATTEMPTS:
            raise Problem(
                400,
                "ERROR_MESSAGE_ATTEMPT",
                en="Too many wrong codes: request a new session",
                ru="Слишком много неверных кодов: создайте новую сессию",
                params={"count": session.wrong_attempts},
            )
        if session.code is None or not secrets.compare_digest(session.code, code):
            session.wrong_attempts += 1
            raise Problem(
                400,
                "ERROR_MESSAGE_WRONG_CODE",
                en="Wrong code",
                ru="Неверный код",
                params={"count": session.wrong_attempts},
            )
        session.closed = True
        token = self.new_verify_token()
        self._tokens[token] = session.to
        return token, session.is_test

    def verify(self, token: str) -> str:
        """Use up a verify token.

        Args:
            token: The token ``check`` issued.

        Returns:
            The ``to`` of the session it came from.

        Raises:
            Problem: 404, the token is unknown or already verified.
        """
        to = self._tokens.pop(token, None)
        if to is None:
            raise Problem(
                404,
                "ERROR_MESSAGE_NOT_FOUND",
                en="Verify token not found or already used",
                ru="Токен не найден или уже использован",
            )
        return to

    def channels_of(self, session: FlowSession, now: float) -> list[dict[str, Any]]:
        """Return a session's channels with their cool-downs as ``timeout``."""
        return [self._with_timeout(channel, session.to, now) for channel in session.channels]

    def channel_of(self, session: FlowSession, channel_type: str, now: float) -> dict[str, Any]:
        """Return one of a session's channels with its cool-down as ``timeout``."""
        channel = _require_channel(session.channels, channel_type)
        return self._with_timeout(channel, session.to, now)

    # -- manual mode -----------------------------------------------------------------

    def manual_send(
        self,
        to: str,
        channel_type: str,
        *,
        provider_id: int | None,
        code: str | None,
        callback_url: str | None,
        now: float,
    ) -> Delivery:
        """Deliver a code the backend chose (or one the fake makes up) over a channel.

        Raises:
            Problem: The channel is not a manual channel of the project, or the provider
                is not one of its providers.
        """
        channel = next((c for c in self.manual_channels if c["type"] == channel_type), None)
        if channel is None:
            raise _no_channel(channel_type)
        if provider_id is not None and all(p["id"] != provider_id for p in channel["providers"]):
            problem = bad_request(
                "provider_id",
                f"one of the {channel_type} channel's providers",
                f"провайдер канала {channel_type}",
            )
            raise problem
        self._message_ids += 1
        delivery = Delivery(
            to=to,
            channel=channel_type,
            code=code if code is not None else self.new_code(),
            at=now,
            provider_id=provider_id,
            callback_url=callback_url,
            message_id=self._message_ids,
        )
        self.deliveries.append(delivery)
        return delivery

    def new_code(self) -> str:
        """Make a random code of the project's length."""
        return "".join(str(secrets.randbelow(10)) for _ in range(self.settings.code_length))

    def new_verify_token(self) -> str:
        """Make a random verify token: URL-safe base64, so it may start with ``-``."""
        return secrets.token_urlsafe(24)

    # -- internals -------------------------------------------------------------------

    def _default_channel(self, fitting: tuple[dict[str, Any], ...], to: str) -> dict[str, Any]:
        last = self._last_channel.get(to)
        if last is not None and any(channel["type"] == last for channel in fitting):
            return _require_channel(fitting, last)
        active = [channel for channel in fitting if channel["is_active"]]
        if active:
            return active[0]
        if fitting:
            return fitting[0]  # inactive: refused with the right sys_message by the caller
        raise Problem(
            400,
            "ERROR_PROJECT_HAS_NO_CHANNEL",
            en="The project has no channel that can reach this recipient",
            ru="В проекте нет канала для этого получателя",
        )

    def _check_can_send(self, channel: Mapping[str, Any], to: str, now: float) -> None:
        if not channel["is_active"]:
            raise Problem(
                400,
                "ERROR_USER_NOT_AUTHORIZE_ON_CHANNEL",
                en=f"The user has not authorized the {channel['type']} channel: open its link",
                ru=f"Пользователь не подключил канал {channel['type']}: откройте ссылку",
            )
        left = _seconds_left(self._cooldowns.get((to, channel["type"]), now), now)
        if left:
            raise Problem(
                400,
                "ERROR_MESSAGE_ATTEMPT",
                en=f"Too soon: try again in {left} seconds",
                ru=f"Слишком рано: повторите через {left} с",
                params={"timeout": left},
            )

    def _deliver(self, session: FlowSession, channel_type: str, now: float) -> None:
        self._cooldowns[session.to, channel_type] = now + COOLDOWN_SECONDS
        self._last_channel[session.to] = channel_type
        if session.is_test:
            return  # a test recipient's code is fixed and nothing is sent
        session.code = self.new_code()
        self.deliveries.append(
            Delivery(
                to=session.to,
                channel=channel_type,
                code=session.code,
                at=now,
                session_id=session.session_id,
            )
        )

    def _with_timeout(self, channel: Mapping[str, Any], to: str, now: float) -> dict[str, Any]:
        left = _seconds_left(self._cooldowns.get((to, channel["type"]), now), now)
        return {**channel, "timeout": max(channel["timeout"], left)}


def _no_channel(channel_type: str) -> Problem:
    return Problem(
        400,
        "ERROR_PROJECT_HAS_NO_CHANNEL",
        en=f"The project has no {channel_type} channel for this recipient",
        ru=f"В проекте нет канала {channel_type} для этого получателя",
    )


def _require_channel(channels: Iterable[dict[str, Any]], channel_type: str) -> dict[str, Any]:
    for channel in channels:
        if channel["type"] == channel_type:
            return channel
    raise _no_channel(channel_type)


@attrs.frozen
class ChannelList:
    """A channel list served as is, serialized once (the fake keeps up with benchmarks).

    The dicts are never mutated after creation, so sessions made from the same list
    share both the dicts and the body.
    """

    channels: tuple[dict[str, Any], ...]
    body: bytes

    @classmethod
    def of(cls, specs: Iterable[Mapping[str, Any]]) -> ChannelList:
        """Check channels (see :func:`checked_channels`) and serialize them once.

        Raises:
            TypeError: A channel is wrongly typed.
            ValueError: A channel is invalid.
        """
        channels = checked_channels(specs)
        return cls(channels, dump(list(channels)))


def dump(document: Any) -> bytes:
    """Serialize a JSON answer compactly, keeping non-ASCII text readable."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class Project:
    """Everything one fake project holds: keys, channels, sessions and the flow.

    Args:
        public_keys: The accepted public keys.
        secret_keys: The accepted secret keys.
        channels: The project channels.
        wall_origin: A monotonic reading and the UTC time it stands for, to turn the
            fake's clock into ``session_expired_at`` datetimes.
    """

    def __init__(
        self,
        public_keys: frozenset[str],
        secret_keys: frozenset[str],
        channels: ChannelList,
        wall_origin: tuple[float, datetime.datetime],
    ) -> None:
        self.public_keys = public_keys
        self.secret_keys = secret_keys
        self.channels = channels
        self.registered: dict[str, ChannelList] = {}
        self.flow = Flow(Settings())
        self._wall_origin = wall_origin

    def wall_time(self, monotonic: float) -> str:
        """Render a reading of the fake's clock as kod.mobi's datetime.

        Returns:
            ISO 8601 in UTC with an explicit offset, to the second, such as
            ``2026-11-30T06:43:00+00:00``.
        """
        origin, wall = self._wall_origin
        moment = wall + datetime.timedelta(seconds=monotonic - origin)
        return moment.replace(microsecond=0).isoformat()


def default_channels() -> list[dict[str, Any]]:
    """Return the channel list a fake project starts with.

    One channel of each documented type. Telegram is inactive and carries a
    ``description``, so clients meet both states and an undocumented field by default.

    Returns:
        Fresh channel dicts, safe to modify.
    """
    return [
        checked_channel({"type": "whatsapp"}),
        checked_channel(
            {
                "type": "telegram",
                "is_active": False,
                "description": "Open the bot and press Start to receive codes",
            }
        ),
        checked_channel({"type": "sms"}),
        checked_channel({"type": "email"}),
    ]
