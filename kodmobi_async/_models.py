"""The values kod.mobi returns, as frozen attrs classes.

Fields follow the API's JSON names so that what a user reads in the kod.mobi docs is
what they type here.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["ChannelType", "SessionChannel"]


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
