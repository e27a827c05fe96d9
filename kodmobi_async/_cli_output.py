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
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Final, NamedTuple

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
    "SCREEN_ROWS",
    "UNWRAPPED_WIDTH",
    "ProgressDisplay",
    "Record",
    "RichMissingError",
    "Scrubber",
    "TableWriter",
    "channel_record",
    "check_format",
    "error_record",
    "has_rich",
    "is_error",
    "is_terminal",
    "pace_log",
    "pace_status",
    "progress_bar",
    "progress_display",
    "records",
    "require_rich",
    "table_writer",
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


# Columns of the table: heading, and whether its cells are right-aligned.
_COLUMNS: Final = (
    ("session", False),
    ("channel", False),
    ("type", False),
    ("active", False),
    ("timeout", True),
    ("link / error", False),
)
#: Rows drawn before the widths are fixed, when stdout is not a terminal (whose
#: height is used instead): a table this short comes out whole, fitted to its rows.
SCREEN_ROWS: Final = 50
# A terminal narrower than the fixed columns still leaves this much for the last one.
_MIN_LAST_WIDTH: Final = 10
# Style names (rich's) of the kinds of cell; "" is unstyled.
_STYLES: Final = {
    "": "",
    "head": "bold",
    "error": "bold red",
    "error_text": "red",
    "yes": "green",
    "no": "yellow",
    "cooling": "yellow",
}
# C0 controls and DEL shown as escapes: a server's text must not move the cursor or
# recolour the terminal. A newline is kept, as a line break within the cell.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != ord("\n")}

#: A cell: its text and its kind of style (a key of the styles).
_Cell = tuple[str, str]


def _session_cell(session_id: str | None) -> str:
    return session_id if session_id is not None else "(project)"


def _shown(text: str) -> str:
    return text if text.isprintable() else text.translate(_CONTROLS)


def _row_cells(row: Record) -> tuple[_Cell, ...]:
    """The six cells of a record's row, the session's included."""
    session = (_shown(_session_cell(row["session_id"])), "")
    if is_error(row):
        return (
            session,
            ("error", "error"),
            ("", ""),
            ("", ""),
            ("", ""),
            (_shown(str(row["error"])), "error_text"),
        )
    timeout = row["timeout"]
    return (
        session,
        (_shown(str(row["name"])), ""),
        (_shown(str(row["type"])), ""),
        ("yes", "yes") if row["is_active"] else ("no", "no"),
        (f"{timeout} s", "cooling") if timeout else ("-", ""),
        (_shown(row["link"] or ""), ""),
    )


class TableWriter:
    """Draws the table for people a few rows at a time, as its records come in.

    rich's :class:`~rich.table.Table` measures and lays out every cell of a table
    before it prints a line: some 100 µs a cell, half a minute for ten thousand
    sessions, and nothing on the screen until the last lookup ends. This draws the
    same table (rich's heavy-head box without edges, a rule between sessions) line by
    line, in the colours rich would use on this terminal: the first screenful of rows
    is held to fit the column widths, then the widths stay fixed and every further
    row is drawn as it comes. A cell wider than its column then folds onto more lines,
    so nothing is cut and the columns stay aligned. A table that fits one screen is
    drawn whole at :meth:`close`, fitted to its rows.

    Args:
        write: Where the text goes (each call one or more whole lines).
        width: The terminal's width, to fold the last column to; ``None`` for a file
            or a pipe, which get lines of any length.
        screen_rows: How many lines the first screenful holds.
        styles: The ANSI prefix and suffix of each kind of cell; none, no colour.
        session_width: The widest session id the batch will look up, so that no later
            id folds.
    """

    __slots__ = (
        "_cell_len",
        "_chop",
        "_columns",
        "_held",
        "_held_lines",
        "_last_session",
        "_screen_rows",
        "_section",
        "_session_width",
        "_styles",
        "_width",
        "_widths",
        "_write",
    )

    def __init__(
        self,
        write: Callable[[str], object],
        *,
        width: int | None = None,
        screen_rows: int = SCREEN_ROWS,
        styles: dict[str, tuple[str, str]] | None = None,
        session_width: int = 0,
    ) -> None:
        from rich.cells import cell_len, chop_cells  # rich is optional: see the docstring

        self._cell_len = cell_len
        self._chop = chop_cells
        self._write = write
        self._width = width
        self._screen_rows = screen_rows
        self._styles = styles or {}
        self._session_width = session_width
        self._held: list[tuple[_Cell, ...]] | None = []
        self._held_lines = 2  # the header and its rule
        self._widths: list[int] = []
        # Each column's padded width, folding width, and whether it is right-aligned.
        self._columns: list[tuple[int, int, bool]] = []
        self._section = ""
        self._last_session: object = _MISSING

    def add(self, row: Record) -> None:
        """Draw ``row`` now, or hold it while the first screenful fills."""
        cells = _row_cells(row)
        held = self._held
        if held is None:
            self._write(self._draw([cells]))
            return
        self._held_lines += 1 if not held or held[-1][0] == cells[0] else 2
        held.append(cells)
        if self._held_lines > self._screen_rows:
            self._release()

    def close(self) -> None:
        """Draw the rows still held (a table that fits one screen)."""
        if self._held:
            self._release()

    def _release(self) -> None:
        held = self._held or []
        self._held = None
        cell_len = self._cell_len
        widths = [cell_len(head) for head, _ in _COLUMNS]
        widths[0] = max(widths[0], self._session_width)
        for cells in held:
            for index, (text, _) in enumerate(cells):
                for line in text.split("\n"):
                    widths[index] = max(widths[index], cell_len(line))
        if self._width is not None:
            room = self._width - sum(widths[:-1]) - 3 * (len(widths) - 1)
            widths[-1] = min(widths[-1], max(room, _MIN_LAST_WIDTH))
        self._widths = widths
        # A file or a pipe gets the last column whole, however long, and unpadded.
        fold_widths = [*widths[:-1], widths[-1] if self._width else sys.maxsize]
        pads = [*widths[:-1], 0]
        rights = [right for _, right in _COLUMNS]
        self._columns = list(zip(pads, fold_widths, rights, strict=True))
        self._section = self._rule("─", "┼")
        self._write(self._header() + self._draw(held))

    def _header(self) -> str:
        bold, end = self._styles.get("head", ("", ""))
        heads = [
            f"{bold}{head}{end}" + " " * (width - self._cell_len(head))
            for (head, _), width in zip(_COLUMNS, self._widths, strict=True)
        ]
        return " ┃ ".join(heads).rstrip() + "\n" + self._rule("━", "╇")

    def _rule(self, line: str, cross: str) -> str:
        last = len(self._widths) - 1
        parts = [line * (w + (1 if i in (0, last) else 2)) for i, w in enumerate(self._widths)]
        return cross.join(parts) + "\n"

    def _draw(self, rows: Iterable[tuple[_Cell, ...]]) -> str:
        out: list[str] = []
        columns = self._columns
        styles = self._styles
        no_style = ("", "")
        section = self._section
        for cells in rows:
            session = cells[0][0]
            if session != self._last_session:
                if self._last_session is not _MISSING:
                    out.append(section)
                self._last_session = session
            else:
                cells = (no_style, *cells[1:])
            drawn = []
            tall = False
            for (text, kind), (width, fold_width, right) in zip(cells, columns, strict=True):
                # Most cells are one short ASCII line: no measuring, no folding.
                if not text.isascii() or "\n" in text or len(text) > fold_width:
                    tall = True
                    break
                start, end = styles.get(kind, no_style) if text else no_style
                pad = " " * (width - len(text))
                drawn.append(f"{pad}{start}{text}{end}" if right else f"{start}{text}{end}{pad}")
            if tall:
                out.append(self._draw_folded(cells))
            else:
                out.append(" │ ".join(drawn).rstrip() + "\n")
        return "".join(out)

    def _draw_folded(self, cells: tuple[_Cell, ...]) -> str:
        """The lines of a row with a cell of several lines or of wide characters."""
        styles = self._styles
        no_style = ("", "")
        pieces = [
            self._fold(text, fold_width)
            for (text, _), (_, fold_width, _) in zip(cells, self._columns, strict=True)
        ]
        lines = []
        for line in range(max(len(parts) for parts in pieces)):
            drawn = []
            for (_, kind), parts, (width, _, right) in zip(
                cells, pieces, self._columns, strict=True
            ):
                text = parts[line] if line < len(parts) else ""
                start, end = styles.get(kind, no_style) if text else no_style
                pad = " " * max(width - self._cell_len(text), 0)
                drawn.append(f"{pad}{start}{text}{end}" if right else f"{start}{text}{end}{pad}")
            lines.append(" │ ".join(drawn).rstrip() + "\n")
        return "".join(lines)

    def _fold(self, text: str, width: int) -> list[str]:
        """``text``'s lines, each cut into pieces of at most ``width`` cells."""
        pieces: list[str] = []
        for line in text.split("\n"):
            fits = self._cell_len(line) <= width
            pieces += [line] if fits else self._chop(line, max(width, 1))
        return pieces


_MISSING: Final = object()


def _write_table(rows: Iterable[Record], out: IO[str]) -> None:
    writer = table_writer(out)
    for row in rows:
        writer.add(row)
    writer.close()


def table_writer(
    out: IO[str], *, write: Callable[[str], object] | None = None, session_width: int = 0
) -> TableWriter:
    """A :class:`TableWriter` for ``out``, with its width, height and colours.

    A terminal gets colours (as rich detects them: ``NO_COLOR``, ``TERM``...) and the
    last column folded to its width; a file or a pipe gets plain, unwrapped lines.

    Args:
        out: The stream the table is for.
        write: Where the text goes instead of ``out.write`` (such as above a progress
            bar on the same terminal).
        session_width: The widest session id to come.

    Returns:
        The writer; call :meth:`TableWriter.close` after the last row.

    Raises:
        RichMissingError: rich is not installed.
    """
    require_rich(_TABLE, otherwise=_MACHINE_FORMATS)
    from rich.console import COLOR_SYSTEMS, Console  # rich is optional: see the docstring
    from rich.style import Style

    console = Console(file=out)
    terminal = is_terminal(out)
    styles: dict[str, tuple[str, str]] = {}
    if console.color_system is not None:
        for kind, name in _STYLES.items():
            style = Style.parse(name)
            if console.no_color:
                style = style.without_color
            rendered = style.render("\0", color_system=COLOR_SYSTEMS[console.color_system])
            start, _, end = rendered.partition("\0")
            styles[kind] = (start, end)
    return TableWriter(
        write or out.write,
        width=console.width if terminal else None,
        screen_rows=console.height if terminal else SCREEN_ROWS,
        styles=styles,
        session_width=session_width,
    )


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
        # Not suppress(CancelledError), which would also swallow a cancellation of
        # this task (Ctrl-C) that arrives while the watcher winds down.
        await asyncio.gather(task, return_exceptions=True)


class ProgressDisplay(NamedTuple):
    """A progress bar being drawn: how to move it, and how to print above it."""

    #: The ``on_progress(done, total)`` callback to hand to the batch.
    on_progress: ProgressCallback
    #: Writes lines (already drawn, colours included) above the bar.
    print_above: Callable[[str], None]


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

    :func:`progress_display`, for a caller that prints nothing while the bar runs.

    Yields:
        The ``on_progress(done, total)`` callback to hand to the batch, or ``None``
        when the bar is disabled.

    Raises:
        RichMissingError: ``enabled`` and rich is not installed.
    """
    with progress_display(
        total, description, enabled=enabled, transient=transient, status=status
    ) as display:
        yield None if display is None else display.on_progress


@contextlib.contextmanager
def progress_display(
    total: int | None,
    description: str,
    *,
    enabled: bool,
    transient: bool = True,
    status: Callable[[], str] | None = None,
) -> Iterator[ProgressDisplay | None]:
    """A progress bar on stderr with count, rate and ETA, and a way to print above it.

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
        The bar, or ``None`` when it is disabled.

    Raises:
        RichMissingError: ``enabled`` and rich is not installed.
    """
    if not enabled:
        yield None
        return
    require_rich()
    from rich.console import (  # rich is optional: see the module docstring
        Console,
        ConsoleOptions,
        RenderableType,
        RenderResult,
    )
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
    from rich.segment import Segment
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

    class Drawn:
        """Lines already drawn (with their colours): rich writes them as they are."""

        def __init__(self, text: str) -> None:
            self.text = text

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            yield Segment(self.text)

    def above(text: str) -> None:
        # Through the bar's console, which clears the bar, writes, and redraws it.
        progress.console.print(Drawn(text), end="")

    with progress:
        yield ProgressDisplay(on_progress, above)
