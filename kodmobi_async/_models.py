"""The values kod.mobi returns, as frozen attrs classes.

Fields follow the API's JSON names so that what a user reads in the kod.mobi docs is
what they type here.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = [
    "ChallengeSettings",
    "ChannelType",
    "CodeCheck",
    "CodeFormat",
    "ManualChannel",
    "ManualMessage",
    "ManualProvider",
    "ProjectInfo",
    "ProjectSettings",
    "SentCode",
    "Session",
    "SessionChannel",
    "Verification",
]


class ChannelType(str, enum.Enum):
    """A delivery channel kod.mobi knows.

    The service may add channels at any time; a type this version does not know arrives
    as its plain string in :attr:`SessionChannel.type` instead of failing the call.
    """

    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    SMS = "sms"
    EMAIL = "email"

    def __str__(self) -> str:
        # str-mixin enums print as "ChannelType.SMS" before 3.11's StrEnum; users
        # writing the type into a table or a log want the wire value.
        return self.value


@attrs.frozen(kw_only=True)
class SessionChannel:
    """One channel of a project, as it stands for a session (or for the project).

    Attributes:
        name: Human-readable channel name, as configured in the kod.mobi panel.
        type: The channel's kind; a :class:`ChannelType`, or the raw string for a
            channel this version of the SDK does not know yet.
        is_active: Whether the user can be reached on the channel now (for Telegram,
            whether they have started the bot through :attr:`link`).
        timeout: Seconds left before the channel may send again (0 to 60).
        image_url: The channel's icon, if the service sent one.
        link: Where the user must go to enable the channel (e.g. the Telegram bot).
        description: Optional descriptive text some projects send.
    """

    name: str
    type: ChannelType | str
    is_active: bool
    timeout: int
    image_url: str | None = None
    link: str | None = None
    description: str | None = None

    @property
    def is_blocked(self) -> bool:
        """Whether the channel is cooling down (``timeout > 0``) and cannot send now."""
        return self.timeout > 0


def _masked(value: str) -> str:
    """A secret-ish value in a repr: enough to tell two apart, not enough to use one."""
    return f"'{value[:4]}…'" if len(value) > 8 else "'…'"


@attrs.frozen(kw_only=True)
class Session:
    """A verification session, from :meth:`KodMobiClient.create_session`.

    Attributes:
        session_id: The session's ULID; pass it to the other calls of the flow.
        session_expired_at: When the session expires (an aware ``datetime``; sessions
            live three minutes).
        sent_to: The channel the code was sent over, or ``None`` when nothing was sent
            (``send=False``, kod.mobi's ``"none"``).
        channels: The project's channels as they stand for this session.
    """

    session_id: str
    session_expired_at: datetime
    sent_to: ChannelType | str | None
    channels: tuple[SessionChannel, ...]


@attrs.frozen(kw_only=True)
class SentCode:
    """A code sent again over a channel, from :meth:`KodMobiClient.send_code`.

    Attributes:
        session_id: The session's ULID.
        session_expired_at: When the session expires (aware).
        channel: The channel used, with its cool-down now running (``timeout``).
    """

    session_id: str
    session_expired_at: datetime
    channel: SessionChannel


@attrs.frozen(kw_only=True)
class CodeCheck:
    """A code the user typed, accepted, from :meth:`KodMobiClient.check_code`.

    Attributes:
        verify_token: The one-time token your backend verifies with the secret key
            (:meth:`KodMobiClient.verify`). Shown shortened in ``repr``.
        is_test: Whether the session is a test session (kod.mobi sent no message).
    """

    verify_token: str = attrs.field(repr=_masked)
    is_test: bool


@attrs.frozen(kw_only=True)
class Verification:
    """Who proved they own a phone or an address, from :meth:`KodMobiClient.verify`.

    Attributes:
        to: The phone (E.164) or email address the code went to.
        phone: The phone, when ``to`` is one (kod.mobi's legacy field).
    """

    to: str
    phone: str | None = None


@attrs.frozen(kw_only=True)
class ManualProvider:
    """A delivery provider of a manual channel.

    Attributes:
        id: The provider's id, for :meth:`KodMobiClient.manual_send`'s ``provider_id``.
        name: Its name.
        type: Its kind (kod.mobi does not document the values; kept as sent).
        is_system: Whether it is one of kod.mobi's own providers.
    """

    id: int
    name: str
    type: str
    is_system: bool


@attrs.frozen(kw_only=True)
class ManualChannel:
    """A channel of the manual mode, with its providers (secret key).

    Attributes:
        name: The channel's name.
        type: Its kind, a :class:`ChannelType` or the raw string.
        providers: The providers that can deliver over it.
    """

    name: str
    type: ChannelType | str
    providers: tuple[ManualProvider, ...]


@attrs.frozen(kw_only=True)
class ManualMessage:
    """A message sent in manual mode, from :meth:`KodMobiClient.manual_send`.

    Attributes:
        message: kod.mobi's informational text.
        code: The code as kod.mobi returns it, encrypted (opaque to the SDK).
        message_id: The message's id.
    """

    message: str
    code: str = attrs.field(repr=_masked)
    message_id: int


@attrs.frozen(kw_only=True)
class ProjectInfo:
    """The project part of :class:`ProjectSettings`.

    Attributes:
        name: The project's name.
    """

    name: str


@attrs.frozen(kw_only=True)
class CodeFormat:
    """What the project's codes look like.

    Attributes:
        length: How many characters a code has.
        digits: Whether codes use digits.
        letters: Whether codes use letters.
    """

    length: int
    digits: bool
    letters: bool


@attrs.frozen(kw_only=True)
class ChallengeSettings:
    """The project's CAPTCHA ("challenge") settings.

    Attributes:
        enabled: Whether create, send and check need a solved challenge token.
        api_key: The CAPTCHA provider's site key for your front end, when enabled.
    """

    enabled: bool
    api_key: str | None = None


@attrs.frozen(kw_only=True)
class ProjectSettings:
    """A project's public settings, from :meth:`KodMobiClient.get_settings`.

    The call and its fields are observed in kod.mobi's own JS client, not documented.

    Attributes:
        language: The project's language (``"en"``, ``"ru"``).
        project: The project's name.
        code: The format of its codes.
        challenge: Its CAPTCHA settings.
    """

    language: str
    project: ProjectInfo
    code: CodeFormat
    challenge: ChallengeSettings
