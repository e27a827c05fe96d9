"""The values users receive: frozen, keyword-only, and printable as the wire says them."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import pytest

from kodmobi_async import ChannelType, SessionChannel


def channel(**fields: Any) -> SessionChannel:
    values: dict[str, Any] = {
        "name": "Telegram",
        "type": ChannelType.TELEGRAM,
        "is_active": True,
        "timeout": 0,
    }
    values.update(fields)
    return SessionChannel(**values)


class TestSessionChannel:
    @pytest.mark.parametrize(
        "field", ["name", "type", "is_active", "timeout", "image_url", "link", "description"]
    )
    def test_every_field_is_frozen(self, field: str) -> None:
        value = channel()

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(value, field, None)

    def test_fields_are_keyword_only(self) -> None:
        positional: Any = SessionChannel

        with pytest.raises(TypeError):
            positional("Telegram", ChannelType.TELEGRAM, True, 0)

    def test_optional_fields_default_to_none(self) -> None:
        value = SessionChannel(name="SMS", type=ChannelType.SMS, is_active=True, timeout=0)

        assert (value.image_url, value.link, value.description) == (None, None, None)

    @pytest.mark.parametrize(("timeout", "blocked"), [(0, False), (1, True), (60, True)])
    def test_is_blocked_while_the_channel_cools_down(self, timeout: int, blocked: bool) -> None:
        assert channel(timeout=timeout).is_blocked is blocked

    def test_equal_values_are_equal_and_hash_alike(self) -> None:
        assert channel() == channel()
        assert len({channel(), channel(), channel(timeout=5)}) == 2

    def test_an_unknown_type_can_be_held_as_a_string(self) -> None:
        assert channel(type="viber").type == "viber"


class TestChannelType:
    @pytest.mark.parametrize(
        ("member", "wire"),
        [
            (ChannelType.WHATSAPP, "whatsapp"),
            (ChannelType.TELEGRAM, "telegram"),
            (ChannelType.SMS, "sms"),
            (ChannelType.EMAIL, "email"),
        ],
    )
    def test_str_and_format_are_the_wire_value(self, member: ChannelType, wire: str) -> None:
        assert str(member) == wire
        assert f"{member}" == wire
        assert f"{member:>10}" == f"{wire:>10}"
        assert "%s" % member == wire  # noqa: UP031 -- logging formats this way

    @pytest.mark.parametrize("member", list(ChannelType))
    def test_a_member_equals_its_plain_string(self, member: ChannelType) -> None:
        assert member == member.value
        assert member.value == member
        assert isinstance(member, str)
        assert hash(member) == hash(member.value)
        assert ChannelType(member.value) is member

    def test_members_serialize_as_plain_strings(self) -> None:
        assert json.dumps([ChannelType.SMS, ChannelType.EMAIL]) == '["sms", "email"]'

    def test_log_lines_show_the_wire_value(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="tests.models"):
            logging.getLogger("tests.models").info("sent via %s", ChannelType.WHATSAPP)

        assert caplog.records[-1].getMessage() == "sent via whatsapp"

    def test_the_known_channels_are_the_documented_four(self) -> None:
        assert {m.value for m in ChannelType} == {"whatsapp", "telegram", "sms", "email"}
