"""What every ``kodmobi`` command shares: exit statuses, argument types, the client.

A command module builds its parser with these pieces and raises :class:`UsageError` for
a mistake in how it was called; :func:`kodmobi_async._cli.main` turns that into one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import Any, Final, Protocol

from .._client import KodMobiClient
from .._errors import ConfigurationError
from .._protocol import API_KEY_ENV, BASE_URL_ENV, SECRET_KEY_ENV, resolve_base_url
from .._throttle import Pace

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "VERBOSE_HELP",
    "Commands",
    "Scrub",
    "UsageError",
    "add_base_url_options",
    "build_client",
    "burst",
    "client_rate",
    "dash_first",
    "help_formatter",
    "new_command",
    "non_negative_int",
    "port",
    "positive_int",
    "positive_seconds",
    "require_env_key",
    "say",
    "server_rate",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a shell reports for `| head`

PROG: Final = "kodmobi"

#: Hides the keys in a text about to be printed (a :class:`~kodmobi_async._cli_output.Scrubber`).
Scrub = Callable[[str], str]

# Which key each variable holds, and where to find it.
_KEYS: Final = {
    API_KEY_ENV: ("public key", "from user.kod.mobi, settings, api-key"),
    SECRET_KEY_ENV: ("secret key", "server side only: never ship it to a browser or an app"),
}


VERBOSE_HELP: Final = "log what the SDK does (requests, retries) to stderr; the key stays hidden"


class UsageError(Exception):
    """A mistake in how the command was called; reported as one line, exit status 2."""


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """The formatter of every ``kodmobi`` parser: line breaks kept, options aligned."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


class Commands(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a command uses it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add the parser of the command ``name``."""
        ...


def dash_first(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Let a command's one positional start with ``-``, as a verify token may.

    kod.mobi's tokens are URL-safe base64, so one in 64 starts with ``-``: argparse reads
    it as an unknown option (or ``-h...`` as a call for help) and says the positional is
    missing, though the user pasted it. The first argument that is neither one of the
    command's options nor an option's value is taken as the positional and moved behind
    ``--``. What could be meant as a long option (an abbreviation of one, or anything
    with ``=``, which URL-safe base64 never holds) is left to argparse, and so is
    everything once the positional is found (``TOKEN --fromat json`` is still reported
    as a bad option); a user who writes ``--`` already is left alone.

    Args:
        args: The arguments after the command's name.
        parser: The command's parser.

    Returns:
        The arguments, with the positional behind ``--`` if it starts with ``-``.
    """
    # argparse has no public way to list a parser's options; this mapping has been
    # there, under this name, since the module was added to the standard library.
    options = parser._option_string_actions
    longs = [name for name in options if name.startswith("--")]
    skip_value = False
    for index, arg in enumerate(args):
        if skip_value:
            skip_value = False
            continue
        if arg == "--":
            return args
        if arg in options:
            skip_value = options[arg].nargs != 0
            continue
        if arg.startswith("--"):
            name, equals, _ = arg.partition("=")
            if equals or any(long.startswith(name) for long in longs):
                continue  # an option, its value attached, or an abbreviation
        elif not arg.startswith("-") or arg == "-":
            return args  # the positional, as argparse will read it
        return [*args[:index], *args[index + 1 :], "--", arg]
    return args


def new_command(
    commands: Commands, name: str, *, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """Add a command's parser, with ``-v`` and the house help layout.

    Args:
        commands: The ``kodmobi`` parser's subparsers.
        name: The command's name.
        summary: One line for the list of commands.
        description: What ``kodmobi NAME --help`` says first.
        epilog: What it says after the options.

    Returns:
        The command's parser, for its own arguments.
    """
    # Also accepted after the command (`kodmobi channels -v`); SUPPRESS keeps a
    # subcommand from resetting a -v given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    return commands.add_parser(
        name,
        parents=[verbose],
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=help_formatter,
    )


def say(message: str, scrub: Scrub) -> None:
    """Print one line about the run to stderr, keys hidden."""
    print(f"{PROG}: {scrub(message)}", file=sys.stderr, flush=True)


# -- argument types ------------------------------------------------------------------


def positive_int(text: str) -> int:
    """A whole number >= 1, for argparse's ``type``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0, for argparse's ``type``."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected a whole number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def port(text: str) -> int:
    """A TCP port, 0 to 65535, for argparse's ``type``."""
    value = non_negative_int(text)
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


def client_rate(text: str) -> float:
    """Requests per second a client keeps to, for argparse's ``type``."""
    value = _finite_float(text)
    if value is None or value < Pace.MIN_RATE:
        msg = f"expected requests per second >= {Pace.MIN_RATE:g}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def server_rate(text: str) -> float:
    """Requests per second the fake admits, for argparse's ``type``."""
    value = _finite_float(text)
    if value is None or value <= 0:
        msg = f"expected requests per second > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def burst(text: str) -> float:
    """Requests a token bucket holds, for argparse's ``type``."""
    value = _finite_float(text)
    if value is None or value < 1:
        msg = f"expected a number of requests >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0, for argparse's ``type``."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = f"expected a number of seconds > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


# -- the client ----------------------------------------------------------------------


def add_base_url_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--base-url`` and ``--allow-http``, which :func:`build_client` reads."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API root (default: ${BASE_URL_ENV}, else https://api.kod.mobi)",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="accept a plain http:// base URL to a host that is not loopback (the key "
        "then crosses the network unencrypted)",
    )


def require_env_key(name: str) -> None:
    """Refuse to run, before any request, when the environment lacks the key ``name``.

    Args:
        name: ``KODMOBI_API_KEY`` or ``KODMOBI_SECRET_KEY``.

    Raises:
        UsageError: The variable is not set.
    """
    if name not in os.environ:
        kind, where = _KEYS[name]
        msg = (
            f"no kod.mobi {kind}: set {name} to the project's {kind} ({where}); this "
            "command reads keys from the environment only, never from its arguments"
        )
        raise UsageError(msg)


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


def build_client(args: argparse.Namespace, **options: Any) -> KodMobiClient:
    """A client from the command's ``--base-url`` and ``--allow-http``, and ``options``.

    Keys not in ``options`` come from the environment, as the client reads them.

    Raises:
        UsageError: The client refused its configuration; the message names the
            command-line option rather than the Python argument.
    """
    try:
        return KodMobiClient(base_url=args.base_url, allow_http=args.allow_http, **options)
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
