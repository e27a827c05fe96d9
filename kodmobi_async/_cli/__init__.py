"""The ``kodmobi`` command line (also ``python -m kodmobi_async``).

One module per command, each an ``add_parser(commands)`` and ``run(args, scrub)`` pair:
``channels`` looks sessions up through :class:`~kodmobi_async.KodMobiClient`;
``create``, ``send``, ``check``, ``verify`` and ``manual-send`` make one call of the
one-time-code flow each (:mod:`.flow`); ``demo`` runs the SDK against its own fake
server, faults scripted in, then walks the flow; ``serve-fake`` runs that fake in the
foreground. What they share (exit statuses, argument types, the client) is
:mod:`.common`. Parsing is the standard library's argparse; tables, progress bars and
the demo need rich, from the ``cli`` extra, which the core package never imports (the
json, jsonl and csv formats run without it).

Exit status: 0 when everything succeeded; 1 when kod.mobi refused a call or some
lookups failed (or the demo did not go as scripted); 2 for a usage or setup error (a
bad option or argument, no key or one kod.mobi rejects, an unreadable ``--from-file``,
a bad ``--base-url``, rich missing), reported as one line on stderr; 130 when
interrupted; 141 when the reader of the output went away.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from .. import __version__, _cli_output
from .._protocol import API_KEY_ENV, SECRET_KEY_ENV
from . import channels, check, create, demo, manual_send, send, serve_fake, verify
from .channels import parse_ids
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    VERBOSE_HELP,
    Scrub,
    UsageError,
    dash_first,
    help_formatter,
    say,
)

__all__ = ["build_parser", "main", "parse_args", "parse_ids"]

#: The commands, in the order ``kodmobi --help`` lists them.
_COMMANDS: Final = (channels, create, send, check, verify, manual_send, demo, serve_fake)

_MAIN_EPILOG: Final = f"""\
examples:
  kodmobi demo                                 # see the SDK work, no account needed
  export {API_KEY_ENV}=...                   # your project's public key
  kodmobi channels 01HZX3Q8V6W4T1N6B2C3D4E5F6  # one session's channels
  kodmobi channels --from-file ids.txt --format csv > channels.csv
  kodmobi create +79001234567                  # send a code; prints the session id
  kodmobi check 01HZX3Q8V6W4T1N6B2C3D4E5F6 4821
  export {SECRET_KEY_ENV}=...                # the secret key, for verify, manual-send
  kodmobi serve-fake --port 8765               # a fake kod.mobi for your own code

Run `kodmobi COMMAND --help` for a command's options and output formats.
Keys are never printed, not even with -v."""


def _command_list() -> str:
    width = max(len(module.NAME) for module in _COMMANDS) + 2
    lines = [f"  {module.NAME:<{width}}{module.SUMMARY}" for module in _COMMANDS]
    return "commands:\n" + "\n".join(lines)


#: Commands whose positional may start with ``-`` (see :func:`.common.dash_first`).
_DASH_FIRST: Final = (verify.NAME,)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``kodmobi`` argument parser.

    Returns:
        The parser; each command sets ``handler`` to its module's ``run``.
    """
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """Build the ``kodmobi`` parser; also return each command's parser by name."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [-h] [--version] [-v] COMMAND ...",
        description=(
            "Check kod.mobi sessions from a shell, run the one-time-code flow, or watch the\n"
            "SDK work against its own fake kod.mobi server."
        ),
        # The list of commands is written here rather than drawn by argparse, whose own
        # list cannot be laid out without its private classes.
        epilog=f"{_command_list()}\n\n{_MAIN_EPILOG}",
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} (kodmobi-async) {__version__}"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(
        prog=PROG, dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS
    )
    for module in _COMMANDS:
        module.add_parser(commands)
    return parser, dict(commands.choices)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``kodmobi``'s arguments; a usage error exits with status 2, as argparse does.

    Args:
        argv: The arguments after the program name.

    Returns:
        The parsed arguments; ``handler`` is the command's ``run``.
    """
    parser, commands = _build()
    return parser.parse_args(_protect_dash_positionals(list(argv), commands))


def _protect_dash_positionals(
    argv: list[str], commands: dict[str, argparse.ArgumentParser]
) -> list[str]:
    """Apply :func:`.common.dash_first` to the arguments of the commands that need it."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if not arg.startswith("-"):
            if arg in _DASH_FIRST:
                return [*argv[: index + 1], *dash_first(argv[index + 1 :], commands[arg])]
            break
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kodmobi`` command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status (see the module docstring).
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    api_key: str | None = getattr(args, "api_key", None)
    scrub = _cli_output.Scrubber(
        [api_key, os.environ.get(API_KEY_ENV), os.environ.get(SECRET_KEY_ENV)]
    )
    handler: Callable[[argparse.Namespace, Scrub], int] = args.handler
    try:
        with _sdk_logging(verbose=args.verbose, scrub=scrub):
            return handler(args, scrub)
    except (UsageError, _cli_output.RichMissingError) as error:
        say(f"error: {error}", scrub)
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted", scrub)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`kodmobi ... | head`): stop quietly, and keep Python
        # from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


class _ScrubFilter(logging.Filter):
    """Runs every log line through the scrubber before a handler formats it."""

    def __init__(self, scrub: Scrub) -> None:
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
def _sdk_logging(*, verbose: bool, scrub: Scrub) -> Iterator[None]:
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
