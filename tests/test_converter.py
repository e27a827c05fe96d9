"""The strict cattrs converter: decoded JSON in, channels or a precise complaint out."""

from __future__ import annotations

from typing import Any

import cattrs
import pytest

from kodmobi_async import ChannelType, SessionChannel
from kodmobi_async._converter import converter, describe_error, structure_channels


def item(**fields: Any) -> dict[str, Any]:
    """A well-formed channel as decoded JSON, with ``fields`` replaced."""
    base: dict[str, Any] = {"name": "SMS", "type": "sms", "is_active": True, "timeout": 0}
    base.update(fields)
    return base


def failure(data: Any) -> tuple[str, str]:
    """Structure ``data``, which must fail, and describe the failure."""
    with pytest.raises(Exception) as info:  # noqa: PT011 -- describe_error takes anything
        structure_channels(data)
    return describe_error(info.value)


class TestStructureChannels:
    def test_every_field_is_read(self) -> None:
        data = [
            item(
                name="Telegram",
                type="telegram",
                is_active=False,
                timeout=60,
                image_url="https://cdn.kod.mobi/tg.png",
                link="https://t.me/bot",
                description="Bot",
            )
        ]

        assert structure_channels(data) == [
            SessionChannel(
                name="Telegram",
                type=ChannelType.TELEGRAM,
                is_active=False,
                timeout=60,
                image_url="https://cdn.kod.mobi/tg.png",
                link="https://t.me/bot",
                description="Bot",
            )
        ]

    def test_optional_fields_may_be_absent_or_null(self) -> None:
        absent, null = structure_channels(
            [item(), item(image_url=None, link=None, description=None)]
        )

        assert absent == null
        assert (absent.image_url, absent.link, absent.description) == (None, None, None)

    def test_unknown_keys_are_ignored(self) -> None:
        (channel,) = structure_channels([item(sorting=1, extra={"nested": [1, 2]})])

        assert channel == SessionChannel(
            name="SMS", type=ChannelType.SMS, is_active=True, timeout=0
        )

    @pytest.mark.parametrize("wire", ["whatsapp", "telegram", "sms", "email"])
    def test_a_known_type_becomes_the_enum_member(self, wire: str) -> None:
        (channel,) = structure_channels([item(type=wire)])

        assert channel.type is ChannelType(wire)

    @pytest.mark.parametrize("wire", ["viber", "SMS", "", "max"])
    def test_an_unknown_type_stays_a_plain_string(self, wire: str) -> None:
        (channel,) = structure_channels([item(type=wire)])

        assert channel.type == wire
        assert type(channel.type) is str

    @pytest.mark.parametrize(("timeout", "expected"), [(0, 0), (60, 60), (30.0, 30), (0.0, 0)])
    def test_an_integral_timeout_is_an_int(self, timeout: float, expected: int) -> None:
        (channel,) = structure_channels([item(timeout=timeout)])

        assert channel.timeout == expected
        assert type(channel.timeout) is int

    def test_the_sdks_converter_is_not_cattrs_global_one(self) -> None:
        # A user's hooks on the global converter must not change how kod.mobi is read.
        assert converter is not cattrs.global_converter
        assert isinstance(converter, cattrs.Converter)


class TestStrictness:
    @pytest.mark.parametrize(
        ("fields", "path", "reason"),
        [
            ({"timeout": True}, "$[0].timeout", "expected an integer, got bool"),
            ({"timeout": False}, "$[0].timeout", "expected an integer, got bool"),
            ({"timeout": "5"}, "$[0].timeout", "expected an integer, got str"),
            ({"timeout": 2.5}, "$[0].timeout", "expected an integer, got float"),
            ({"timeout": None}, "$[0].timeout", "expected an integer, got null"),
            ({"timeout": [5]}, "$[0].timeout", "expected an integer, got list"),
            ({"timeout": 61}, "$[0].timeout", "expected 0..60 seconds, got 61"),
            ({"timeout": 60.5}, "$[0].timeout", "expected an integer, got float"),
            (
                {"timeout": 1e20},
                "$[0].timeout",
                "expected 0..60 seconds, got 100000000000000000000",
            ),
            ({"timeout": -1}, "$[0].timeout", "expected 0..60 seconds, got -1"),
            ({"is_active": 1}, "$[0].is_active", "expected a boolean, got int"),
            ({"is_active": 0}, "$[0].is_active", "expected a boolean, got int"),
            ({"is_active": "false"}, "$[0].is_active", "expected a boolean, got str"),
            ({"is_active": None}, "$[0].is_active", "expected a boolean, got null"),
            ({"name": 5}, "$[0].name", "expected a string, got int"),
            ({"name": None}, "$[0].name", "expected a string, got null"),
            ({"name": b"SMS"}, "$[0].name", "expected a string, got bytes"),
            ({"type": None}, "$[0].type", "expected a string, got null"),
            ({"type": 1}, "$[0].type", "expected a string, got int"),
            ({"image_url": 5}, "$[0].image_url", "expected a string, got int"),
            ({"link": True}, "$[0].link", "expected a string, got bool"),
            ({"description": ["x"]}, "$[0].description", "expected a string, got list"),
        ],
    )
    def test_a_value_of_the_wrong_type_is_not_coerced(
        self, fields: dict[str, Any], path: str, reason: str
    ) -> None:
        assert failure([item(**fields)]) == (f"{path}: {reason}", path)

    @pytest.mark.parametrize("missing", ["name", "type", "is_active", "timeout"])
    def test_a_missing_required_field_is_named(self, missing: str) -> None:
        data = item()
        del data[missing]

        assert failure([data]) == (f"$[0].{missing}: required field is missing", f"$[0].{missing}")


class TestDescribeError:
    @pytest.mark.parametrize(
        ("data", "kind"),
        [
            ({"success": True}, "an object"),
            ("[]", "a string"),
            (None, "null"),
            (False, "a boolean"),
            (3, "a number"),
            (3.5, "a number"),
            ((), "tuple"),
        ],
    )
    def test_a_top_level_non_array_is_reported_at_the_root(self, data: Any, kind: str) -> None:
        assert failure(data) == (f"$: expected a JSON array of channels, got {kind}", "$")

    @pytest.mark.parametrize(
        ("value", "kind"),
        [
            ("sms", "a string"),
            (None, "null"),
            (True, "a boolean"),
            (7, "a number"),
            (7.5, "a number"),
        ],
    )
    def test_an_item_that_is_not_an_object_is_reported_by_index(
        self, value: Any, kind: str
    ) -> None:
        message, path = failure([item(), item(), value])

        assert path == "$[2]"
        assert message == f"$[2]: expected a JSON object, got {kind}"

    def test_the_path_points_into_the_right_item(self) -> None:
        data = [item(), item(), item(), item(timeout="7")]

        assert failure(data) == ("$[3].timeout: expected an integer, got str", "$[3].timeout")

    def test_several_problems_in_one_item_are_counted(self) -> None:
        message, path = failure([item(name=None, is_active="yes", timeout=99)])

        assert path == "$[0].name"
        assert message == "$[0].name: expected a string, got null (and 2 more problems)"

    def test_problems_in_several_items_are_counted_from_the_first(self) -> None:
        message, path = failure([item(), item(timeout=-5), item(is_active=None)])

        assert path == "$[1].timeout"
        assert message == "$[1].timeout: expected 0..60 seconds, got -5 (and 1 more problems)"

    def test_an_exception_that_is_not_from_cattrs_is_reported_at_the_root(self) -> None:
        assert describe_error(ValueError("boom")) == ("$: boom", "$")

    def test_a_bare_key_error_reads_as_a_missing_field(self) -> None:
        assert describe_error(KeyError("name")) == ("$: required field is missing", "$")
