"""What the flow commands print: the one object kod.mobi answered, or the one error.

A success is the answer's model as a record with kod.mobi's own field names (nested
the way kod.mobi nests them: ``create``'s ``channels``, ``send``'s ``channel``); a
failure is an *error record*: ``error``, ``status``, ``sys_message``, ``error_params``.
Every string passes through the scrubber, so no key is ever printed.

- ``json``: the record as one indented JSON object.
- ``jsonl``: the record on one line.
- ``csv`` (flat answers only): a header of every success field then every error field,
  and one row; a null is an empty cell, booleans are ``true``/``false``, and
  ``error_params`` is JSON text.
- ``table`` (rich, from the ``cli`` extra): one row per field, an error in red.
"""

from __future__ import annotations

import csv
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Final, cast

import attrs

from .. import _cli_output
from .._errors import APIStatusError, KodMobiError

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = [
    "FAILURE_FIELDS",
    "FLAT_FORMATS",
    "NESTED_FORMATS",
    "check_format",
    "failure_record",
    "field_names",
    "object_record",
    "write_object",
]

#: The fields of a flow command's error record.
FAILURE_FIELDS: Final = ("error", "status", "sys_message", "error_params")
#: The formats of a command whose answer is flat (check, verify, manual-send).
FLAT_FORMATS: Final = _cli_output.FORMATS
#: The formats of a command whose answer nests (create, send): CSV cannot hold it.
NESTED_FORMATS: Final = ("table", "json", "jsonl")

Record = dict[str, Any]


def _plain(_instance: object, _field: object, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _scrubbed(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {key: _scrubbed(item, scrub) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item, scrub) for item in value]
    return value


def field_names(model: type) -> tuple[str, ...]:
    """The fields of an attrs model, in order: a flat answer's CSV columns."""
    return tuple(field.name for field in attrs.fields(model))


def object_record(value: object, scrub: Callable[[str], str]) -> Record:
    """An answer's model as a JSON-ready record, with kod.mobi's field names.

    Args:
        value: An attrs model from the client (a ``Session``, a ``CodeCheck``, ...).
        scrub: Hides the keys in every string.

    Returns:
        The record: datetimes in ISO 8601, channel types as their plain strings.

    Raises:
        TypeError: ``value`` is not an attrs instance.
    """
    if not attrs.has(type(value)):
        msg = f"expected one of the SDK's models, got {type(value).__name__}"
        raise TypeError(msg)
    fields = attrs.asdict(cast("AttrsInstance", value), value_serializer=_plain)
    record: Record = _scrubbed(fields, scrub)
    return record


def failure_record(error: KodMobiError, scrub: Callable[[str], str]) -> Record:
    """The error record of a failed call.

    Args:
        error: What the call raised.
        scrub: Hides the keys in every string.

    Returns:
        ``error`` (the message), and when kod.mobi answered an error status, its
        ``status``, ``sys_message`` and ``error_params`` (else null, null and ``{}``).
    """
    status: int | None = None
    sys_message: str | None = None
    params: Mapping[str, Any] = {}
    if isinstance(error, APIStatusError):
        status, sys_message, params = error.status, error.sys_message, error.error_params
    record: Record = _scrubbed(
        {
            "error": str(error),
            "status": status,
            "sys_message": sys_message,
            "error_params": dict(params),
        },
        scrub,
    )
    return record


def check_format(fmt: str) -> None:
    """Check, before the call, that :func:`write_object` can write ``fmt`` here.

    Raises:
        RichMissingError: ``fmt`` is ``"table"`` and rich is not installed.
    """
    if fmt == "table":
        _cli_output.require_rich(
            "--format table (the default)", otherwise="use --format json, which needs nothing more"
        )


def write_object(record: Record, fmt: str, out: IO[str], *, fields: Iterable[str] = ()) -> None:
    """Write one success or error record to ``out``.

    Args:
        record: From :func:`object_record` or :func:`failure_record`.
        fmt: One of :data:`FLAT_FORMATS` (``csv`` only for a flat answer).
        out: Where it goes.
        fields: The success record's fields, for the CSV header.

    Raises:
        RichMissingError: ``fmt`` is ``"table"`` and rich is not installed.
        ValueError: ``fmt`` is not a known format.
    """
    if fmt == "json":
        out.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "jsonl":
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        header = [*fields, *FAILURE_FIELDS]
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerow({field: _csv_cell(record.get(field)) for field in header})
    elif fmt == "table":
        _write_table(record, out)
    else:
        msg = f"format must be one of {', '.join(FLAT_FORMATS)}, got {fmt!r}"
        raise ValueError(msg)


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _channel_line(channel: Mapping[str, Any]) -> str:
    state = "active" if channel.get("is_active") else "inactive"
    timeout = channel.get("timeout")
    wait = f", may send again in {timeout} s" if timeout else ""
    return f"{channel.get('type')} ({channel.get('name')}): {state}{wait}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "\n".join(_cell(item) for item in value) or "-"
    if isinstance(value, Mapping):
        if "type" in value and "is_active" in value:
            return _channel_line(value)
        return ", ".join(f"{key}={item}" for key, item in value.items()) or "-"
    return str(value)


def _write_table(record: Record, out: IO[str]) -> None:
    check_format("table")
    from rich.console import Console  # rich is optional: see _cli_output
    from rich.table import Table
    from rich.text import Text

    style = "red" if "error" in record else ""
    table = Table(show_header=False, show_edge=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for field, value in record.items():
        # Text() cells, not markup strings: a "[" in a server's text must not be styling.
        table.add_row(field, Text(_cell(value), style=style))
    width = None if _cli_output.is_terminal(out) else _cli_output.UNWRAPPED_WIDTH
    Console(file=out, width=width).print(table)
