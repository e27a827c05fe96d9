"""The SDK's one cattrs converter, and the strict hooks that make it trustworthy.

cattrs' defaults coerce (``int("5")``, ``bool("false") is True``); a payload that
disagrees with the API's schema must instead fail loudly with the path of the bad field,
so scalars get strict hooks here. Never use cattrs' global converter: a user's own
registrations there must not change how we read kod.mobi.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from ._models import (
    ChallengeSettings,
    ChannelType,
    CodeCheck,
    CodeFormat,
    ManualChannel,
    ManualMessage,
    ManualProvider,
    ProjectInfo,
    ProjectSettings,
    SentCode,
    Session,
    SessionChannel,
    Verification,
)

if TYPE_CHECKING:
    import cattrs

__all__ = ["structure", "structure_channels"]

# ISO 8601 as kod.mobi's clients read it (JS `new Date(...)`): a date, a time, optional
# fractions and a zone; "Z" and offsets without a colon included, which Python 3.10's
# fromisoformat does not take.
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)"
)

_TIMEOUT_MAX = 60


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _strict_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    msg = f"expected a string, got {_type_name(value)}"
    raise TypeError(msg)


def _strict_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    msg = f"expected a boolean, got {_type_name(value)}"
    raise TypeError(msg)


def _strict_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    # JSON has one number type; 30.0 is a fine integer, 2.5 is not.
    if type(value) is float and value.is_integer():
        return int(value)
    msg = f"expected an integer, got {_type_name(value)}"
    raise TypeError(msg)


def _strict_optional_str(value: Any, _: type) -> str | None:
    if value is None or type(value) is str:
        return value
    msg = f"expected a string, got {_type_name(value)}"
    raise TypeError(msg)


# A dict lookup, not ChannelType(text): the enum's constructor is several times slower.
_CHANNEL_TYPES: dict[str, ChannelType] = {member.value: member for member in ChannelType}


def _channel_type(value: Any, _: type) -> ChannelType | str:
    if type(value) is not str:
        msg = f"expected a string, got {_type_name(value)}"
        raise TypeError(msg)
    # A channel kod.mobi added after this release is kept as its string, not refused.
    return _CHANNEL_TYPES.get(value, value)


def _timeout(value: Any, _: type) -> int:
    seconds = _strict_int(value, int)
    if not 0 <= seconds <= _TIMEOUT_MAX:
        msg = f"expected 0..{_TIMEOUT_MAX} seconds, got {seconds}"
        raise ValueError(msg)
    return seconds


def _aware_datetime(value: Any, _: type) -> datetime:
    if type(value) is not str:
        msg = f"expected an ISO 8601 date-time string, got {_type_name(value)}"
        raise TypeError(msg)
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        msg = "expected an ISO 8601 date-time with a zone, such as 2026-11-30T06:43:00+00:00"
        raise ValueError(msg)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in {"Z", "z"}:
        offset = timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if zone[0] == "-":
            offset = -offset
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=timezone(offset),
        )
    except ValueError as exc:  # day 31 of February, an offset of 24 hours or more
        msg = f"expected a valid date-time: {exc}"
        raise ValueError(msg) from None


def _sent_to(value: Any, _: type) -> ChannelType | str | None:
    # kod.mobi says "none" when it sent nothing (send=false); None means the same.
    if value is None or value == "none":
        return None
    return _channel_type(value, str)


_Item = TypeVar("_Item")


def _is_exactly(wanted: Any) -> Callable[[Any], bool]:
    def predicate(candidate: Any) -> bool:
        return bool(candidate == wanted)

    return predicate


def _strict_tuple(item: type[_Item], conv: cattrs.Converter) -> Callable[[Any, type], Any]:
    """A hook for ``tuple[item, ...]`` that takes a JSON array only (not a string or an
    object, which cattrs would iterate)."""
    as_list = conv.get_structure_hook(list[item])  # type: ignore[valid-type]

    def hook(value: Any, _: type) -> tuple[_Item, ...]:
        if type(value) is not list:
            msg = f"expected a JSON array, got {_json_kind(value)}"
            raise TypeError(msg)
        return tuple(as_list(value, list[item]))  # type: ignore[valid-type]

    return hook


def _make_converter() -> tuple[cattrs.Converter, Callable[[Any, Any], SessionChannel]]:
    import cattrs
    from cattrs.gen import make_dict_structure_fn, override

    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str | None, _strict_optional_str)
    conv.register_structure_hook(ChannelType | str, _channel_type)
    overrides = {
        "type": override(struct_hook=_channel_type),
        "timeout": override(struct_hook=_timeout),
    }
    detailed = make_dict_structure_fn(SessionChannel, conv, **overrides)  # type: ignore[arg-type]
    # The same hooks without cattrs' per-field bookkeeping of where an error happened;
    # only used while nothing goes wrong (see structure_channels).
    fast = make_dict_structure_fn(
        SessionChannel,
        conv,
        _cattrs_detailed_validation=False,
        **overrides,  # type: ignore[arg-type]
    )

    def channel(value: Any, cls: type) -> SessionChannel:
        if type(value) is not dict:
            msg = f"expected a JSON object, got {_json_kind(value)}"
            raise TypeError(msg)
        return detailed(value, cls)

    conv.register_structure_hook(SessionChannel, channel)
    conv.register_structure_hook(datetime, _aware_datetime)
    for item in (SessionChannel, ManualProvider):
        # Generic aliases cannot be registered by type; match them exactly instead.
        conv.register_structure_hook_func(_is_exactly(tuple[item, ...]), _strict_tuple(item, conv))  # type: ignore[valid-type]
    session_hook = make_dict_structure_fn(Session, conv, sent_to=override(struct_hook=_sent_to))
    conv.register_structure_hook(Session, session_hook)
    return conv, fast


class _Built:
    """The converter and the hooks looked up from it, made on first use.

    Building them imports cattrs and generates code for every model: most of this
    package's import cost, paid instead by the first answer decoded.
    """

    def __init__(self) -> None:
        self.converter, self.fast_channel = _make_converter()
        # Looked up once: dispatching on the type for every response is measurable at
        # batch scale.
        self.channels_hook: Callable[[Any, Any], list[SessionChannel]] = (
            self.converter.get_structure_hook(list[SessionChannel])
        )


_built: _Built | None = None


def _get() -> _Built:
    global _built
    if _built is None:
        _built = _Built()
    return _built


def __getattr__(name: str) -> Any:
    if name == "converter":
        return _get().converter
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def structure_channels(data: Any) -> list[SessionChannel]:
    """Structure a decoded JSON value into channels.

    The common case (a well-formed list) goes through cattrs' lean generated code;
    anything that fails is structured again with full validation, whose errors carry
    the path of every bad field.

    Raises:
        Exception: The value does not fit the model; :func:`describe_error` turns
            whatever was raised into a message and a JSON path.
    """
    if type(data) is not list:
        msg = f"expected a JSON array of channels, got {_json_kind(data)}"
        raise TypeError(msg)
    built = _built if _built is not None else _get()
    fast = built.fast_channel
    try:
        return [fast(item, SessionChannel) for item in data]
    except Exception:  # noqa: S110 -- whatever failed is diagnosed by the detailed pass
        pass
    return built.channels_hook(data, list[SessionChannel])


_T = TypeVar("_T")

#: The models a kod.mobi answer is structured into, besides channel lists.
MODELS: tuple[type, ...] = (
    Session,
    SentCode,
    CodeCheck,
    Verification,
    ManualChannel,
    ManualMessage,
    ProjectSettings,
    ProjectInfo,
    CodeFormat,
    ChallengeSettings,
)


def structure(data: Any, cls: type[_T]) -> _T:
    """Structure a decoded JSON value into ``cls`` (a model, or ``list[Model]``).

    Raises:
        Exception: The value does not fit; :func:`describe_error` explains it.
    """
    origin = getattr(cls, "__origin__", None)
    expected_list = origin is list
    if expected_list and type(data) is not list:
        msg = f"expected a JSON array, got {_json_kind(data)}"
        raise TypeError(msg)
    if not expected_list and type(data) is not dict:
        msg = f"expected a JSON object, got {_json_kind(data)}"
        raise TypeError(msg)
    return _get().converter.structure(data, cls)


def _json_kind(value: object) -> str:
    kinds = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
    }
    if value is None:
        return "null"
    return kinds.get(type(value), "a number" if isinstance(value, float) else _type_name(value))


def _walk(exc: BaseException, path: str) -> list[tuple[str, str]]:
    """Flatten cattrs' nested exception groups into (path, reason) pairs."""
    from cattrs.errors import ClassValidationError, IterableValidationError

    if isinstance(exc, ClassValidationError):
        found: list[tuple[str, str]] = []
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            found += _walk(sub, f"{path}.{note.name}")
        found += [(path, _reason(sub)) for sub in others]
        return found
    if isinstance(exc, IterableValidationError):
        found = []
        items, others = exc.group_exceptions()
        for sub, inote in items:
            found += _walk(sub, f"{path}[{inote.index}]")
        found += [(path, _reason(sub)) for sub in others]
        return found
    return [(path, _reason(exc))]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field is missing"
    return str(exc)


def describe_error(exc: BaseException) -> tuple[str, str]:
    """Turn a structuring failure into (readable message, JSON path of the first bad field).

    Args:
        exc: What :func:`structure_channels` raised.

    Returns:
        A message such as ``"$[2].timeout: expected an integer, got str"`` and the
        path alone (``"$[2].timeout"``).
    """
    problems = _walk(exc, "$")
    path, reason = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{path}: {reason}{more}", path
