"""``kodmobi channels``: look sessions up, many at a time, in four output formats."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from .. import _cli_output
from .._client import DEFAULT_TIMEOUT, KodMobiClient
from .._errors import AuthenticationError, KodMobiError, PermissionDeniedError
from .._protocol import API_KEY_ENV, BASE_URL_ENV
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    Scrub,
    UsageError,
    add_base_url_options,
    build_client,
    client_rate,
    new_command,
    positive_int,
    positive_seconds,
    say,
)

if TYPE_CHECKING:
    from .._batch import Outcome

__all__ = ["DEFAULT_CONCURRENCY", "EXIT_STATUS_HELP", "add_parser", "parse_ids", "run"]

NAME: Final = "channels"
SUMMARY: Final = "look up the channels of sessions, or of the project"
DEFAULT_CONCURRENCY: Final = 50

_logger = logging.getLogger("kodmobi_async.cli")
# How often the table's new rows are written, and how much text may wait meanwhile
# before the batch is held back for it.
_PRINT_EVERY: Final = 0.1
_PRINT_BACKLOG: Final = 1 << 18

EXIT_STATUS_HELP: Final = """\
exit status:
  0    every lookup succeeded
  1    some lookups failed (they are in the output as error records)
  2    usage or setup error: a bad option, no API key or one kod.mobi rejects,
       an unreadable --from-file, a bad --base-url; one line on stderr
  130  interrupted (Ctrl-C)"""

_EPILOG: Final = f"""\
examples:
  kodmobi channels                             # the project's channels
  kodmobi channels 01HZX3Q8V6W4T1N6B2C3D4E5F6 01HZX3Q8V6W4T1N6B2C3D4E5F7
  kodmobi channels --from-file ids.txt --format jsonl | jq .
  kodmobi channels --from-file ids.txt --rate-limit 400 --format csv > channels.csv
  grep -o '01[0-9A-Z]\\{{24\\}}' app.log | kodmobi channels --from-file - --format csv

The API key comes from --api-key or {API_KEY_ENV} (prefer the variable: command
lines are visible to other users of the machine); the base URL from --base-url or
{BASE_URL_ENV}. A progress bar is drawn on stderr when stderr is a terminal (and
rich, from the cli extra, is installed; json, jsonl and csv need nothing more).
Failed lookups are output as error records and counted on stderr.

When kod.mobi answers 429 (too many requests), the client slows down to the pace it
accepts and retries; the progress bar then says "rate-limited: pacing at N req/s",
and "paused by kod.mobi, resuming in N s" while kod.mobi asked for a pause. If you
know your project's limit, --rate-limit keeps to it from the start, without any 429.

{_cli_output.FORMATS_HELP}

{EXIT_STATUS_HELP}"""


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi channels`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Look up the channels of the given sessions (none given: the project's own\n"
            "channel list) through kod.mobi's GET /session/channels, many at a time."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument(
        "session_ids", nargs="*", metavar="SESSION_ID", help="session ids (ULIDs) to look up"
    )
    parser.add_argument(
        "--from-file",
        metavar="PATH",
        help="also read ids from PATH, one per line ('-' for stdin); blank lines and "
        "# comments are skipped",
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help=f"the project's public key (default: ${API_KEY_ENV})"
    )
    add_base_url_options(parser)
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="lookups in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of each lookup, retries included (default: %(default)g)",
    )
    parser.add_argument(
        "--rate-limit",
        type=client_rate,
        metavar="R",
        help="send at most R requests a second, for a project whose kod.mobi limit you "
        "know (default: none; the client slows down by itself when kod.mobi answers 429)",
    )
    parser.add_argument(
        "--language",
        choices=("en", "ru"),
        help="language of kod.mobi's error texts (default: the service's, English)",
    )
    parser.add_argument(
        "--format",
        choices=_cli_output.FORMATS,
        default="table",
        help="output format, see below (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def parse_ids(lines: Iterable[str]) -> list[str]:
    """Session ids from lines of text: one per line, blank lines and ``#`` comments out.

    A ``#`` starts a comment anywhere on a line (a ULID never contains one).

    Args:
        lines: The lines of a file or of stdin.

    Returns:
        The ids, stripped, in order (duplicates kept; the batch looks each up once).
    """
    ids = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            ids.append(text)
    return ids


def _read_ids(path: str, stdin: IO[str]) -> list[str]:
    try:
        if path == "-":
            return parse_ids(stdin)
        return parse_ids(Path(path).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        source = "stdin" if path == "-" else repr(path)
        msg = f"cannot read --from-file {source}: {reason}"
        raise UsageError(msg) from None


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi channels``; return its exit status."""
    _cli_output.check_format(args.format)
    if args.api_key is None and API_KEY_ENV not in os.environ:
        msg = (
            f"no kod.mobi API key: set {API_KEY_ENV} (or pass --api-key) to the project's "
            "public key, from user.kod.mobi, settings, api-key"
        )
        raise UsageError(msg)
    client = build_client(
        args,
        api_key=args.api_key,
        timeout=args.timeout,
        language=args.language,
        max_connections=args.concurrency,
        rate_limit=args.rate_limit,
    )
    ids: list[str] | None = None
    if args.session_ids or args.from_file is not None:
        ids = list(args.session_ids)
        if args.from_file is not None:
            ids += _read_ids(args.from_file, sys.stdin)
        if not ids:
            source = "stdin" if args.from_file == "-" else repr(args.from_file)
            say(f"no session ids in {source}; nothing to look up", scrub)

    # Captured before any progress bar: while rich's bar is shown, sys.stdout is its proxy.
    out = sys.stdout
    try:
        if args.format == "table" and ids:
            outcomes = asyncio.run(_look_up_drawing(client, ids, args.concurrency, scrub, out))
        else:
            outcomes = asyncio.run(_look_up(client, ids, args.concurrency))
            _cli_output.write_records(_cli_output.records(outcomes, scrub), args.format, out)
    except (AuthenticationError, PermissionDeniedError) as exc:
        msg = f"{exc}; check --api-key or {API_KEY_ENV}"
        raise UsageError(msg) from None
    out.flush()

    failed = Counter(
        type(outcome).__name__ for _, outcome in outcomes if isinstance(outcome, KodMobiError)
    )
    if not failed:
        return EXIT_OK
    if ids is None:
        say("the project lookup failed", scrub)
    else:
        kinds = ", ".join(f"{name}: {count}" for name, count in failed.most_common())
        say(f"{failed.total()} of {len(outcomes)} sessions failed ({kinds})", scrub)
    return EXIT_FAILED


async def _look_up(
    client: KodMobiClient, ids: list[str] | None, concurrency: int
) -> list[tuple[str | None, Outcome]]:
    async with client:
        if ids is None:
            outcome: Outcome
            try:
                outcome = await client.get_session_channels()
            except (AuthenticationError, PermissionDeniedError):
                raise
            except KodMobiError as error:
                outcome = error
            return [(None, outcome)]
        with _bar(client, ids) as bar:
            async with _cli_output.pace_log(lambda: client.pace, _logger):
                result = await client.gather_session_channels(
                    ids,
                    concurrency=concurrency,
                    on_progress=None if bar is None else bar.on_progress,
                )
        return list(result.items())


def _bar(
    client: KodMobiClient, ids: list[str]
) -> contextlib.AbstractContextManager[_cli_output.ProgressDisplay | None]:
    # Without rich the bar is left out rather than refused: it is decoration, and
    # the machine formats must run with the core package alone.
    enabled = bool(ids) and _cli_output.is_terminal(sys.stderr) and _cli_output.has_rich()
    return _cli_output.progress_display(
        len(ids),
        "looking up",
        enabled=enabled,
        status=lambda: _cli_output.pace_status(client.pace),
    )


async def _look_up_drawing(
    client: KodMobiClient, ids: list[str], concurrency: int, scrub: Scrub, out: IO[str]
) -> list[tuple[str | None, Outcome]]:
    """Look ``ids`` up and draw the table as the outcomes come, in input order.

    Outcomes arrive in the order lookups end; one that ends early waits for the ids
    before it, so the table keeps the order of the input (with 50 lookups in flight,
    a few rows at most wait). The text goes to ``out`` from a thread (see
    :class:`_Printer`), or above the progress bar when both share the terminal.
    """
    order = list(dict.fromkeys(ids))
    with _bar(client, ids) as bar:
        write: Callable[[str], object] = _write_through(out)
        if bar is not None and _cli_output.is_terminal(out):
            write = bar.print_above
        printer = _Printer(write)
        table = _cli_output.table_writer(
            out, write=printer.add, session_width=max(map(len, order), default=0)
        )
        ready: dict[str, Outcome] = {}
        done: list[tuple[str | None, Outcome]] = []
        async with client, printer, _cli_output.pace_log(lambda: client.pace, _logger):
            stream = client.iter_session_channels(
                order,
                concurrency=concurrency,
                on_progress=None if bar is None else bar.on_progress,
            )
            async with contextlib.aclosing(stream):
                async for session_id, outcome in stream:
                    ready[session_id] = outcome
                    while len(done) < len(order) and order[len(done)] in ready:
                        next_id = order[len(done)]
                        next_outcome = ready.pop(next_id)
                        done.append((next_id, next_outcome))
                        for record in _cli_output.records([(next_id, next_outcome)], scrub):
                            table.add(record)
                    await printer.wait_if_behind()
            table.close()
        return done


def _write_through(out: IO[str]) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


class _Printer:
    """Text for the terminal, written from a thread every tenth of a second.

    A reader that stops reading (a pager left waiting) blocks the write. Blocked in
    the event loop, it would stall every lookup in flight until their deadlines
    passed; blocked in a thread, it holds the batch back instead: the caller awaits
    :meth:`wait_if_behind`, stops taking outcomes, and the batch's bounded queue
    keeps further lookups from starting.
    """

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self._pending: list[str] = []
        self._size = 0
        self._lock = asyncio.Lock()
        # The write in a thread, until it has ended. Cancelling the flush that started
        # it does not stop the thread, so the next flush waits for it: text written
        # later must never overtake it (the end of a table printed above its header).
        self._writing: asyncio.Future[object] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def add(self, text: str) -> None:
        """Queue ``text`` to be written at the next tick."""
        self._pending.append(text)
        self._size += len(text)

    async def wait_if_behind(self) -> None:
        """Write now, and wait for it, when much text is waiting."""
        if self._size >= _PRINT_BACKLOG:
            await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if self._writing is not None:
                await asyncio.shield(self._writing)
                self._writing = None
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            self._size = 0
            self._writing = asyncio.get_running_loop().run_in_executor(None, self._write, text)
            await asyncio.shield(self._writing)
            self._writing = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_PRINT_EVERY)
            await self._flush()

    async def __aenter__(self) -> _Printer:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            # gather, not suppress(CancelledError): a cancellation of this task that
            # arrives meanwhile (Ctrl-C) must not be swallowed with the ticker's own.
            await asyncio.gather(self._ticker, return_exceptions=True)
        if exc_info[0] is None:
            await self._flush()
