"""What ``kodmobi channels`` prints: records, the four formats, and the progress bar.

Every outcome becomes flat records first; each format then writes the same records, so
the formats cannot disagree about what happened. The machine formats are a stable
contract (a field is never renamed or retyped within 0.x; new fields may be added):

- A *channel record* per channel of a session that was looked up: ``session_id``,
  ``name``, ``type``, ``is_active``, ``timeout``, ``image_url``, ``link``.
- An *error record* per session whose lookup failed: ``session_id``, ``error``,
  ``status``, ``sys_message``.

``session_id`` is ``null`` (empty in CSV) for the project's own channel list.
``type`` is the channel type's plain string (``"sms"``, or a type this SDK does not
know yet); ``is_active`` a boolean; ``timeout`` whole seconds of cool-down left.
``error`` is the error's message; ``status`` (the HTTP status) and ``sys_message``
(kod.mobi's machine code) are ``null`` unless kod.mobi answered with an error status.
A session with no channels yields no record.

While a batch is held back, the bar says why: :func:`pace_status` words the client's
:class:`~kodmobi_async.PaceState` ("rate-limited: pacing at 48 req/s", "paused by
kod.mobi, resuming in 3 s"), and :func:`pace_log` logs the same changes for ``-v``.

rich is imported only where a table or a progress bar is drawn, so this module and the
machine formats work without the ``cli`` extra; :func:`require_rich` says what to
install when it is missing, and :func:`has_rich` lets a caller go without the bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib.util
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Final

from ._errors import APIStatusError, KodMobiError
from ._models import SessionChannel

if TYPE_CHECKING:
    from ._batch import Outcome, ProgressCallback
    from ._throttle import PaceState

__all__ = [
    "CHANNEL_FIELDS",
    "CSV_FIELDS",
    "ERROR_FIELDS",
    "FORMATS",
    "FORMATS_HELP",
    "UNWRAPPED_WIDTH",
    "Record",
    "RichMissingError",
    "Scrubber",
    "channel_record",
    "check_format",
    "error_record",
    "has_rich",
    "is_error",
    "is_terminal",
    "pace_log",
    "pace_status",
    "progress_bar",
    "records",
    "require_rich",
    "write_records",
]

#: One output record: field name to a plain JSON value.
Record = dict[str, Any]

CHANNEL_FIELDS: Final = ("session_id", "name", "type", "is_active", "timeout", "image_url", "link")
ERROR_FIELDS: Final = ("session_id", "error", "status", "sys_message")
#: The CSV header: every field of both record kinds, in this order.
CSV_FIELDS: Final = CHANNEL_FIELDS + ERROR_FIELDS[1:]
FORMATS: Final = ("table", "json", "jsonl", "csv")

FORMATS_HELP: Final = """\
output formats (--format):
  table  for people: one row per session and channel, errors in red (the default)
  json   one JSON array of records
  jsonl  one JSON record per line
  csv    a header row, then one record per row; every column is always present:
         session_id,name,type,is_active,timeout,image_url,link,error,status,sys_message
         (booleans as true/false, null as an empty cell)

  A channel record: session_id, name, type, is_active, timeout, image_url, link.
  An error record:  session_id, error, status, sys_message.
  session_id is null for the project's channel list; type is a plain string such as
  "sms"; status and sys_message are null unless kod.mobi answered an error status.
  A session with no channels yields no record. These fields are stable."""

_TABLE: Final = "--format table (the default)"
_MACHINE_FORMATS: Final = "use --format json, jsonl or csv, which need nothing more"
_INSTALL_HINT: Final = "install kodmobi-async[cli] (pip install 'kodmobi-async[cli]')"
# Keys shorter than this are not scrubbed: replacing every "ab" in the output would
# corrupt it, and no real kod.mobi key is that short.
_MIN_SECRET_LENGTH: Final = 4
_MASK: Final = "***"
#: The width of a table written to a file or a pipe: wide enough never to wrap.
UNWRAPPED_WIDTH: Final = 1000
# How often pace_log looks at the client: often enough to catch a one-second pause.
_PACE_POLL_SECONDS: Final = 0.2


class RichMissingError(Exception):
    """rich, which draws tables and progress bars, is not installed."""


def has_rich() -> bool:
    """Whether rich can be imported, without importing it.

    Returns:
        True when the ``cli`` extra (or rich by itself) is installed.
    """
    return importlib.util.find_spec("rich") is not None


def require_rich(what: str = "this command", *, otherwise: str = "") -> None:
    """Check that rich can be imported.

    Args:
        what: What needs rich, as the message should name it.
        otherwise: A way to do without rich, added to the message when given.

    Raises:
        RichMissingError: It cannot; the message says which extra to install.
    """
    if not has_rich():
        msg = f"{what} needs the rich package: {_INSTALL_HINT}"
        if otherwise:
            msg += f"; or {otherwise}"
        raise RichMissingError(msg)


def check_format(fmt: str) -> None:
    """Check, before any lookup, that :func:`write_records` can write ``fmt`` here.

    Only the table needs rich; the machine formats are plain text.

    Args:
        fmt: One of :data:`FORMATS`.

    Raises:
        RichMissingError: ``fmt`` is ``"table"`` and rich is not installed.
    """
    if fmt == "table":
        require_rich(_TABLE, otherwise=_MACHINE_FORMATS)


class Scrubber:
    """Replaces secrets (the API key) in any text about to be printed.

    The SDK never puts the key into a message, but a server or a proxy can echo it
    back in an error body; the CLI runs every text it prints through this as well.

    Args:
        secrets: The values to hide; ``None``, empty and very short ones are ignored.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None]) -> None:
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first, so a key that contains another is hidden whole.
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text


def _identity(text: str) -> str:
    return text


def channel_record(session_id: str | None, channel: SessionChannel) -> Record:
    """The record of one channel of one session (``None`` for the project)."""
    return {
        "session_id": session_id,
        "name": channel.name,
        "type": str(channel.type),
        "is_active": channel.is_active,
        "timeout": channel.timeout,
        "image_url": channel.image_url,
        "link": channel.link,
    }


def error_record(
    session_id: str | None, error: KodMobiError, scrub: Callable[[str], str] = _identity
) -> Record:
    """The record of one failed lookup; its texts pass through ``scrub``."""
    status: int | None = None
    sys_message: str | None = None
    if isinstance(error, APIStatusError):
        status = error.status
        sys_message = None if error.sys_message is None else scrub(error.sys_message)
    return {
        "session_id": session_id,
        "error": scrub(str(error)),
        "status": status,
        "sys_message": sys_message,
    }


def records(
    outcomes: Iterable[tuple[str | None, Outcome]],
    scrub: Callable[[str], str] = _identity,
) -> Iterator[Record]:
    """Flatten ``(session_id, channels_or_error)`` pairs into records, in order."""
    for session_id, outcome in outcomes:
        if isinstance(outcome, KodMobiError):
            yield error_record(session_id, outcome, scrub)
        else:
            for channel in outcome:
                yield channel_record(session_id, channel)


def is_error(record: Record) -> bool:
    """Whether ``record`` is an error record."""
    return "error" in record


def write_records(rows: Iterable[Record], fmt: str, out: IO[str]) -> None:
    """Write ``rows`` to ``out`` in one of :data:`FORMATS`.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
        RichMissingError: ``fmt`` is ``"table"`` and rich is not installed.
    """
    if fmt == "json":
        _write_json(rows, out)
    elif fmt == "jsonl":
        _write_jsonl(rows, out)
    elif fmt == "csv":
        _write_csv(rows, out)
    elif fmt == "table":
        _write_table(rows, out)
    else:
        msg = f"format must be one of {', '.join(FORMATS)}, got {fmt!r}"
        raise ValueError(msg)


def _write_json(rows: Iterable[Record], out: IO[str]) -> None:
    items = list(rows)
    if not items:
        out.write("[]\n")
        return
    out.write("[\n")
    for index, row in enumerate(items):
        out.write("  " + json.dumps(row, ensure_ascii=False))
        out.write(",\n" if index < len(items) - 1 else "\n")
    out.write("]\n")


def _write_jsonl(rows: Iterable[Record], out: IO[str]) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n")


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_csv(rows: Iterable[Record], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({field: _csv_cell(row.get(field)) for field in CSV_FIELDS})


def _write_table(rows: Iterable[Record], out: IO[str]) -> None:
    require_rich(_TABLE, otherwise=_MACHINE_FORMATS)
    from rich.console import Console  # rich is optional: see the module docstring
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("session", no_wrap=True)
    table.add_column("channel")
    table.add_column("type")
    table.add_column("active")
    table.add_column("timeout", justify="right")
    table.add_column("link / error", overflow="fold")

    # Text() cells, not markup strings: a "[" in a server's text must not be styling.
    items = list(rows)
    for index, row in enumerate(items):
        session_id = row["session_id"]
        first = index == 0 or items[index - 1]["session_id"] != session_id
        last = index == len(items) - 1 or items[index + 1]["session_id"] != session_id
        session = Text(session_id if session_id is not None else "(project)") if first else ""
        if is_error(row):
            table.add_row(
                session,
                Text("error", style="bold red"),
                "",
                "",
                "",
                Text(str(row["error"]), style="red"),
                end_section=last,
            )
            continue
        active = Text("yes", style="green") if row["is_active"] else Text("no", style="yellow")
        timeout = Text(f"{row['timeout']} s", style="yellow") if row["timeout"] else Text("-")
        table.add_row(
            session,
            Text(row["name"]),
            Text(row["type"]),
            active,
            timeout,
            Text(row["link"] or ""),
            end_section=last,
        )
    if not items:
        return
    # A terminal wraps the table to its width; a file or a pipe gets it unwrapped.
    width = None if is_terminal(out) else UNWRAPPED_WIDTH
    Console(file=out, width=width).print(table)


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (not a pipe, a file, or closed)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _per_second(rate: float) -> str:
    return f"{rate:,.0f} req/s" if rate >= 10 else f"{rate:.1f} req/s"


def _pace_kind(state: PaceState) -> str:
    """What holds the client back, in a word: paused, rate-limited, capped, or ``""``."""
    if state.paused_for > 0:
        return "paused"
    if state.rate is None:
        return ""
    # The pace never grows past the ceiling, so a rate below it was cut by 429s.
    if state.ceiling is not None and state.rate >= state.ceiling:
        return "capped"
    return "rate-limited"


def pace_status(state: PaceState) -> str:
    """Say in a few words what holds a client back, for a progress bar or a log line.

    Args:
        state: The client's :attr:`~kodmobi_async.KodMobiClient.pace`.

    Returns:
        ``"paused by kod.mobi, resuming in 3 s"`` during a pause kod.mobi asked for,
        ``"rate-limited: pacing at 48 req/s"`` while kod.mobi's 429s set the pace,
        ``"pacing at 50 req/s (the set limit)"`` while an explicit ``rate_limit`` does,
        and ``""`` while nothing does.
    """
    kind = _pace_kind(state)
    if kind == "paused":
        return f"paused by kod.mobi, resuming in {math.ceil(state.paused_for)} s"
    if kind == "capped" and state.rate is not None:
        return f"pacing at {_per_second(state.rate)} (the set limit)"
    if kind == "rate-limited" and state.rate is not None:
        return f"rate-limited: pacing at {_per_second(state.rate)}"
    return ""


@contextlib.asynccontextmanager
async def pace_log(
    read: Callable[[], PaceState], logger: logging.Logger, *, every: float = _PACE_POLL_SECONDS
) -> AsyncIterator[None]:
    """Log an INFO line whenever what holds the client back changes, while the block runs.

    The pace changes with every 429 and success, so only a change of kind is logged
    (pacing starts, a pause starts, pacing ends), not every new rate. Nothing runs
    unless ``logger`` is enabled for INFO.

    Args:
        read: Returns the client's current :attr:`~kodmobi_async.KodMobiClient.pace`.
        logger: Where the lines go.
        every: Seconds between two looks at the pace.

    Yields:
        Nothing; the watch ends with the block.
    """
    if not logger.isEnabledFor(logging.INFO):
        yield
        return

    async def watch() -> None:
        kind = ""
        while True:
            state = read()
            now = _pace_kind(state)
            if now != kind:
                logger.info("%s", pace_status(state) or "no longer held back by kod.mobi")
                kind = now
            await asyncio.sleep(every)

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def progress_bar(
    total: int | None,
    description: str,
    *,
    enabled: bool,
    transient: bool = True,
    status: Callable[[], str] | None = None,
) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr with count, rate and ETA, fed by ``on_progress``.

    The bar redraws itself ten times a second, from a thread of rich's, so its clock
    and its status move even while no lookup finishes.

    Args:
        total: How many lookups the batch will make, if known.
        description: The label left of the bar.
        enabled: Draw it (the CLI passes whether stderr is a terminal).
        transient: Erase the bar when the batch is done.
        status: Returns a short text to show under the bar at each redraw, such as
            :func:`pace_status` of the client's pace; it runs on rich's thread, so it
            must only read.

    Yields:
        The ``on_progress(done, total)`` callback to hand to the batch, or ``None``
        when the bar is disabled.

    Raises:
        RichMissingError: ``enabled`` and rich is not installed.
    """
    if not enabled:
        yield None
        return
    require_rich()
    from rich.console import Console, RenderableType  # rich is optional: see the docstring
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Lookups per second, as rich measures them over the last half minute."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")

    class StatusProgress(Progress):
        """The bar, and below it whatever ``status`` says at this redraw.

        A line of its own, not a column: next to the bar's columns the status would
        wrap on an 80-column terminal.
        """

        def get_renderables(self) -> Iterable[RenderableType]:
            yield from super().get_renderables()
            said = status() if status is not None else ""
            if said:
                yield Text(said, style="yellow")

    progress = StatusProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )
    task = progress.add_task(description, total=total)

    def on_progress(done: int, total: int | None) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield on_progress
