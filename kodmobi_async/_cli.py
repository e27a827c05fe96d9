"""The ``kodmobi`` command line (also ``python -m kodmobi_async``).

Three commands: ``channels`` looks sessions up through :class:`KodMobiClient`,
``demo`` runs the SDK against its own fake server with faults scripted in, and
``serve-fake`` runs that fake in the foreground. Parsing is the standard library's
argparse; tables, progress bars and the demo need rich, from the ``cli`` extra, which
the core package never imports (``channels --format json/jsonl/csv`` run without it).

Exit status: 0 when everything succeeded; 1 when some lookups failed (or the demo did
not go as scripted); 2 for a usage or setup error (a bad option, no API key or one
kod.mobi rejects, an unreadable ``--from-file``, a bad ``--base-url``, rich missing),
reported as one line on stderr; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from . import __version__, _cli_output
from ._cli_output import pace_status
from ._client import DEFAULT_TIMEOUT, KodMobiClient
from ._errors import AuthenticationError, ConfigurationError, KodMobiError, PermissionDeniedError
from ._protocol import API_KEY_ENV, BASE_URL_ENV, resolve_base_url
from ._throttle import Pace

if TYPE_CHECKING:
    from ._batch import Outcome

__all__ = ["build_parser", "main", "parse_ids"]

_logger = logging.getLogger("kodmobi_async.cli")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a shell reports for `| head`

PROG: Final = "kodmobi"
DEFAULT_CONCURRENCY: Final = 50
DEMO_SESSIONS: Final = 2000
SERVE_FAKE_SESSIONS: Final = 3
_SHOWN_SESSIONS: Final = 5
_COMPUTED: Final = "computed"
_NO_HEADER: Final = "none"
_DEFAULT_RETRY_AFTER: Final = 1

_EXIT_STATUS_HELP: Final = """\
exit status:
  0    every lookup succeeded
  1    some lookups failed (they are in the output as error records)
  2    usage or setup error: a bad option, no API key or one kod.mobi rejects,
       an unreadable --from-file, a bad --base-url; one line on stderr
  130  interrupted (Ctrl-C)"""

_MAIN_EPILOG: Final = f"""\
examples:
  kodmobi demo                                 # see the SDK work, no account needed
  export {API_KEY_ENV}=...                   # your project's public key
  kodmobi channels 01HZX3Q8V6W4T1N6B2C3D4E5F6  # one session's channels
  kodmobi channels --from-file ids.txt --format csv > channels.csv
  kodmobi serve-fake --port 8765               # a fake kod.mobi for your own code

Run `kodmobi COMMAND --help` for a command's options and output formats.
The API key is never printed, not even with -v."""

_CHANNELS_EPILOG: Final = f"""\
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

{_EXIT_STATUS_HELP}"""

_DEMO_EPILOG: Final = """\
examples:
  kodmobi demo                         # 2000 sessions, faults scripted in
  kodmobi demo --sessions 5000 --no-faults

The demo starts a fake kod.mobi on loopback in this process and scripts faults:
some sessions get one dropped connection, some one 503, the one in the middle a 503
with Retry-After: 1 (which pauses the whole client), and some ids are unknown (404
expected). The fake also admits only 400 requests/s (429 above that), so the client
has to find that pace. It then looks every session up through the real client and
reports what happened.

exit status:
  0    every session ended as scripted (recovered, or the expected error)
  1    some did not
  2    usage error"""

_SERVE_FAKE_EPILOG: Final = f"""\
examples:
  kodmobi serve-fake --port 8765 --sessions 100 --write-ids ids.txt
  kodmobi serve-fake --rate-limit 50 --burst 5 --retry-after computed
  # in another shell:
  export {BASE_URL_ENV}=http://127.0.0.1:8765 {API_KEY_ENV}=kodmobi-fake-public-key
  kodmobi channels --from-file ids.txt

The fake answers GET /session/channels like kod.mobi: the project's channels, a
session's channels, 400 for a malformed id, 404 for an unknown one, 401 for a wrong
key. With --rate-limit it admits that many requests a second per key (a token bucket
holding --burst requests) and answers the excess 429 with Retry-After, as kod.mobi's
gateway does. It stops cleanly on Ctrl-C or SIGTERM."""


class UsageError(Exception):
    """A mistake in how the command was called; reported as one line, exit status 2."""


# -- argument types ------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected a whole number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        msg = f"expected a port from 0 to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _client_rate(text: str) -> float:
    value = _finite_float(text)
    if value is None or value < Pace.MIN_RATE:
        msg = f"expected requests per second >= {Pace.MIN_RATE:g}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _server_rate(text: str) -> float:
    value = _finite_float(text)
    if value is None or value <= 0:
        msg = f"expected requests per second > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _burst(text: str) -> float:
    value = _finite_float(text)
    if value is None or value < 1:
        msg = f"expected a number of requests >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _retry_after(text: str) -> int | str | None:
    if text in (_COMPUTED, _NO_HEADER):
        return None if text == _NO_HEADER else _COMPUTED
    try:
        return _non_negative_int(text)
    except argparse.ArgumentTypeError:
        msg = f"expected whole seconds >= 0, {_COMPUTED!r} or {_NO_HEADER!r}, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = f"expected a number of seconds > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


# -- the parser ----------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' and epilogs' line breaks; lists commands without noise."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):
            # Drop the "COMMAND" line argparse puts above the list of commands.
            text = text.split("\n", 1)[1]
        return text


def build_parser() -> argparse.ArgumentParser:
    """Build the ``kodmobi`` argument parser.

    Returns:
        The parser; each subcommand sets ``handler`` to the function that runs it.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Check kod.mobi sessions from a shell, or watch the SDK work against its own\n"
            "fake kod.mobi server."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} (kodmobi-async) {__version__}"
    )
    verbose_help = "log what the SDK does (requests, retries) to stderr; the key stays hidden"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # Also accepted after the command (`kodmobi channels -v`); SUPPRESS keeps a
    # subcommand from resetting a -v given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    channels = commands.add_parser(
        "channels",
        parents=[common],
        help="look up the channels of sessions, or of the project",
        description=(
            "Look up the channels of the given sessions (none given: the project's own\n"
            "channel list) through kod.mobi's GET /session/channels, many at a time."
        ),
        epilog=_CHANNELS_EPILOG,
        formatter_class=_HelpFormatter,
    )
    channels.add_argument(
        "session_ids", nargs="*", metavar="SESSION_ID", help="session ids (ULIDs) to look up"
    )
    channels.add_argument(
        "--from-file",
        metavar="PATH",
        help="also read ids from PATH, one per line ('-' for stdin); blank lines and "
        "# comments are skipped",
    )
    channels.add_argument(
        "--api-key", metavar="KEY", help=f"the project's public key (default: ${API_KEY_ENV})"
    )
    channels.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API root (default: ${BASE_URL_ENV}, else https://api.kod.mobi)",
    )
    channels.add_argument(
        "--allow-http",
        action="store_true",
        help="accept a plain http:// base URL to a host that is not loopback (the key "
        "then crosses the network unencrypted)",
    )
    channels.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="lookups in flight at once (default: %(default)s)",
    )
    channels.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of each lookup, retries included (default: %(default)g)",
    )
    channels.add_argument(
        "--rate-limit",
        type=_client_rate,
        metavar="R",
        help="send at most R requests a second, for a project whose kod.mobi limit you "
        "know (default: none; the client slows down by itself when kod.mobi answers 429)",
    )
    channels.add_argument(
        "--language",
        choices=("en", "ru"),
        help="language of kod.mobi's error texts (default: the service's, English)",
    )
    channels.add_argument(
        "--format",
        choices=_cli_output.FORMATS,
        default="table",
        help="output format, see below (default: %(default)s)",
    )
    channels.set_defaults(handler=_run_channels)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the SDK against an embedded fake kod.mobi, faults included",
        description=(
            "Start a fake kod.mobi on loopback, script faults into it, look every session\n"
            "up through the real client and report. Needs no network and no key."
        ),
        epilog=_DEMO_EPILOG,
        formatter_class=_HelpFormatter,
    )
    demo.add_argument(
        "--sessions",
        type=_positive_int,
        default=DEMO_SESSIONS,
        metavar="N",
        help="how many session ids to look up (default: %(default)s)",
    )
    demo.add_argument(
        "--faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="script dropped connections, 503s, unknown ids and a rate limit (default: on)",
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="lookups in flight at once (default: %(default)s)",
    )
    demo.set_defaults(handler=_run_demo)

    serve = commands.add_parser(
        "serve-fake",
        parents=[common],
        help="run the fake kod.mobi server in the foreground",
        description=(
            "Run the SDK's fake kod.mobi on loopback until Ctrl-C, and print its URL,\n"
            "the key it accepts and some session ids, for your own code or curl."
        ),
        epilog=_SERVE_FAKE_EPILOG,
        formatter_class=_HelpFormatter,
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="PORT",
        help="port on 127.0.0.1 to listen on (default: a free one)",
    )
    serve.add_argument(
        "--sessions",
        type=_non_negative_int,
        default=SERVE_FAKE_SESSIONS,
        metavar="N",
        help="sessions to create (default: %(default)s)",
    )
    serve.add_argument(
        "--write-ids", metavar="PATH", help="write every session id to PATH, one per line"
    )
    serve.add_argument(
        "--rate-limit",
        type=_server_rate,
        metavar="R",
        help="admit R requests a second per API key, 429 above that (default: no limit)",
    )
    serve.add_argument(
        "--burst",
        type=_burst,
        metavar="B",
        help="requests a key may send at once, with --rate-limit (default: R/10, at least 1)",
    )
    serve.add_argument(
        "--retry-after",
        type=_retry_after,
        default=argparse.SUPPRESS,
        metavar="N|computed|none",
        help="Retry-After of a 429, with --rate-limit: N whole seconds, 'computed' (the "
        "wait until the key may send again) or 'none' for no header (default: "
        f"{_DEFAULT_RETRY_AFTER})",
    )
    serve.set_defaults(handler=_run_serve_fake)
    return parser


# -- main ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kodmobi`` command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status (see the module docstring).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key: str | None = getattr(args, "api_key", None)
    scrub = _cli_output.Scrubber([api_key, os.environ.get(API_KEY_ENV)])
    handler: Callable[[argparse.Namespace, Callable[[str], str]], int] = args.handler
    try:
        with _sdk_logging(verbose=args.verbose, scrub=scrub):
            return handler(args, scrub)
    except (UsageError, _cli_output.RichMissingError) as error:
        _say(f"error: {error}", scrub)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted", scrub)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`kodmobi ... | head`): stop quietly, and keep Python
        # from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _say(message: str, scrub: Callable[[str], str]) -> None:
    """Print one line about the run to stderr."""
    print(f"{PROG}: {scrub(message)}", file=sys.stderr, flush=True)


class _ScrubFilter(logging.Filter):
    """Runs every log line through the scrubber before a handler formats it."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            # Format the traceback now, scrubbed, and keep the handler from redoing it.
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


@contextlib.contextmanager
def _sdk_logging(*, verbose: bool, scrub: Callable[[str], str]) -> Iterator[None]:
    """Send the SDK's log to stderr: everything with -v, else only errors.

    Without -v, retries (warnings) stay quiet: they are routine, and a batch of
    thousands would bury the output.
    """
    logger = logging.getLogger("kodmobi_async")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(_ScrubFilter(scrub))
    old_level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# -- channels ------------------------------------------------------------------------


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


def _refused_only_for_plain_http(base_url: str | None) -> bool:
    """Whether the base URL is refused as given but accepted with ``allow_http``."""
    try:
        resolve_base_url(base_url, os.environ)
    except ConfigurationError:
        try:
            resolve_base_url(base_url, os.environ, allow_http=True)
        except ConfigurationError:
            return False
        return True
    return False


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


def _run_channels(args: argparse.Namespace, scrub: Callable[[str], str]) -> int:
    _cli_output.check_format(args.format)
    if args.api_key is None and API_KEY_ENV not in os.environ:
        msg = (
            f"no kod.mobi API key: set {API_KEY_ENV} (or pass --api-key) to the project's "
            "public key, from user.kod.mobi, settings, api-key"
        )
        raise UsageError(msg)
    try:
        client = KodMobiClient(
            api_key=args.api_key,
            base_url=args.base_url,
            timeout=args.timeout,
            language=args.language,
            max_connections=args.concurrency,
            allow_http=args.allow_http,
            rate_limit=args.rate_limit,
        )
    except ConfigurationError as exc:
        if not args.allow_http and _refused_only_for_plain_http(args.base_url):
            # The SDK's message names its Python argument; a shell user needs the flag.
            source = "--base-url" if args.base_url is not None else BASE_URL_ENV
            msg = (
                f"{source} uses plain http to a host that is not loopback, which would send "
                "the API key in clear text; use https, or pass --allow-http if you really "
                "mean it"
            )
            raise UsageError(msg) from None
        raise UsageError(str(exc)) from None
    ids: list[str] | None = None
    if args.session_ids or args.from_file is not None:
        ids = list(args.session_ids)
        if args.from_file is not None:
            ids += _read_ids(args.from_file, sys.stdin)
        if not ids:
            source = "stdin" if args.from_file == "-" else repr(args.from_file)
            _say(f"no session ids in {source}; nothing to look up", scrub)

    try:
        outcomes = asyncio.run(_look_up(client, ids, args.concurrency))
    except (AuthenticationError, PermissionDeniedError) as exc:
        msg = f"{exc}; check --api-key or {API_KEY_ENV}"
        raise UsageError(msg) from None

    _cli_output.write_records(_cli_output.records(outcomes, scrub), args.format, sys.stdout)
    sys.stdout.flush()

    failed = Counter(
        type(outcome).__name__ for _, outcome in outcomes if isinstance(outcome, KodMobiError)
    )
    if not failed:
        return EXIT_OK
    if ids is None:
        _say("the project lookup failed", scrub)
    else:
        kinds = ", ".join(f"{name}: {count}" for name, count in failed.most_common())
        _say(f"{failed.total()} of {len(outcomes)} sessions failed ({kinds})", scrub)
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
        # Without rich the bar is left out rather than refused: it is decoration, and
        # the machine formats must run with the core package alone.
        enabled = bool(ids) and _cli_output.is_terminal(sys.stderr) and _cli_output.has_rich()
        with _cli_output.progress_bar(
            len(ids), "looking up", enabled=enabled, status=lambda: pace_status(client.pace)
        ) as on_progress:
            async with _cli_output.pace_log(lambda: client.pace, _logger):
                result = await client.gather_session_channels(
                    ids, concurrency=concurrency, on_progress=on_progress
                )
        return list(result.items())


# -- demo ----------------------------------------------------------------------------


def _run_demo(args: argparse.Namespace, scrub: Callable[[str], str]) -> int:
    _cli_output.require_rich()
    from ._demo import run_demo  # keeps the fake server's imports off the other commands

    passed = asyncio.run(
        run_demo(
            sessions=args.sessions,
            faults=args.faults,
            concurrency=args.concurrency,
            show_progress=_cli_output.is_terminal(sys.stderr),
            out=sys.stdout,
        )
    )
    return EXIT_OK if passed else EXIT_FAILED


# -- serve-fake ----------------------------------------------------------------------


def _rate_limit_options(args: argparse.Namespace) -> dict[str, Any]:
    """``FakeKodMobi``'s rate-limit arguments from serve-fake's options."""
    if args.rate_limit is None:
        for given, name in (
            (args.burst is not None, "--burst"),
            ("retry_after" in args, "--retry-after"),
        ):
            if given:
                msg = f"{name} needs --rate-limit"
                raise UsageError(msg)
        return {}
    return {
        "rate_limit": args.rate_limit,
        "burst": args.burst,
        "retry_after": getattr(args, "retry_after", _DEFAULT_RETRY_AFTER),
    }


def _run_serve_fake(args: argparse.Namespace, scrub: Callable[[str], str]) -> int:
    limits = _rate_limit_options(args)
    try:
        requests = asyncio.run(_serve_fake(args.port, args.sessions, args.write_ids, limits))
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        requests = None
    served = "" if requests is None else f" after {requests} request(s)"
    _say(f"fake kod.mobi stopped{served}", scrub)
    return EXIT_OK


async def _serve_fake(
    port: int, sessions: int, write_ids: str | None, limits: dict[str, Any]
) -> int:
    from .testing import FakeKodMobi  # aiohttp.web is only needed here

    try:
        fake = FakeKodMobi(port=port, **limits)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        await fake.start()
    except OSError as exc:
        msg = f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}"
        raise UsageError(msg) from None
    try:
        with _stop_signals() as stop:
            ids = fake.add_sessions(sessions)
            if write_ids is not None:
                _write_ids(write_ids, ids)
            limit = _limit_line(fake.rate_limit, fake.burst, limits.get("retry_after"))
            print(_banner(fake.url, fake.api_key, ids, write_ids, limit), flush=True)
            await stop.wait()
        return fake.request_count
    finally:
        await fake.close()


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM, for as long as the block runs.

    Where the loop cannot take signal handlers (Windows), Ctrl-C still raises
    KeyboardInterrupt, which the caller treats as a stop.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(signum)
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _write_ids(path: str, ids: list[str]) -> None:
    try:
        Path(path).write_text("".join(f"{sid}\n" for sid in ids), encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write --write-ids {path!r}: {exc.strerror or exc}"
        raise UsageError(msg) from None


def _limit_line(rate: float | None, burst: float | None, retry_after: object) -> str | None:
    if rate is None or burst is None:
        return None
    if retry_after is None:
        answer = "no Retry-After"
    elif retry_after == _COMPUTED:
        answer = "Retry-After computed (seconds until the key may send again)"
    else:
        answer = f"Retry-After {retry_after}"
    return f"Rate limit: {rate:g}/s per key, burst {burst:g}, {answer}"


def _banner(
    url: str, key: str, ids: list[str], write_ids: str | None, limit: str | None = None
) -> str:
    shown = " ".join(ids[:_SHOWN_SESSIONS])
    more = len(ids) - _SHOWN_SESSIONS
    if more > 0:
        shown += f" (+{more} more" + (f", all in {write_ids})" if write_ids else ")")
    example = ids[0] if ids else "01HZX3Q8V6W4T1N6B2C3D4E5F6"
    lines = [
        f"Fake kod.mobi serving on {url} (Ctrl-C to stop)",
        f"API key:  {key}",
        f"Sessions: {shown or 'none'}",
        *([limit] if limit else []),
        "",
        "Point the SDK or the CLI at it:",
        f"  export {BASE_URL_ENV}={url} {API_KEY_ENV}={key}",
        f"  kodmobi channels {example}",
        f"  curl -H 'x-api-key: {key}' '{url}/session/channels?session_id={example}'",
    ]
    return "\n".join(lines)
