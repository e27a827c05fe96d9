"""What the flow commands share: their options, their help, and one call through the client.

``create``, ``send``, ``check``, ``verify`` and ``manual-send`` each make one call to
kod.mobi and print its answer (see :mod:`.objects`). Keys come from the environment
only (``KODMOBI_API_KEY``, ``KODMOBI_SECRET_KEY``), never from the command line, where
other users of the machine could read them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from .._calls import DEFAULT_CHALLENGE_HEADER
from .._client import DEFAULT_TIMEOUT, KodMobiClient
from .._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    KodMobiError,
    PermissionDeniedError,
)
from .._protocol import API_KEY_ENV, BASE_URL_ENV, SECRET_KEY_ENV
from . import objects
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    Scrub,
    UsageError,
    add_base_url_options,
    build_client,
    positive_seconds,
    require_env_key,
    say,
)

__all__ = [
    "Call",
    "add_channel_argument",
    "add_flow_options",
    "add_to_argument",
    "flow_epilog",
    "run_call",
]

#: One call of the client, made by a command.
Call = Callable[[KodMobiClient], Awaitable[object]]

_EXIT_STATUS: Final = """\
exit status:
  0    kod.mobi accepted the call
  1    kod.mobi refused it (the error record says why: status, sys_message, error_params)
       or the call failed (the network, a timeout)
  2    usage or setup error: a bad option or argument (a malformed phone, code or
       session id), no key or one kod.mobi rejects, a bad --base-url; one line on stderr
  130  interrupted (Ctrl-C)"""

_FORMATS: Final = """\
output formats (--format):
  table  for people: one row per field (the default; needs the cli extra)
  json   the answer as one JSON object, with kod.mobi's own field names
  jsonl  the same on one line"""

_CSV: Final = """
  csv    a header of every field, the error record's fields included, then one row"""

_FAILURE: Final = """
  When kod.mobi refuses, the output is an error record instead:
  error, status, sys_message, error_params (e.g. {"count": 1} for a wrong code)."""


def flow_epilog(examples: Iterable[str], *, key: str, csv: bool) -> str:
    """The help after a flow command's options: examples, keys, formats, exit status.

    Args:
        examples: Command lines, each with its ``# comment``.
        key: The variable the command's key comes from.
        csv: Whether the command offers ``--format csv``.

    Returns:
        The epilog.
    """
    kind = "secret" if key == SECRET_KEY_ENV else "public"
    lines = "\n".join(f"  {example}" for example in examples)
    server_side = (
        " (server side only: never ship the secret key to a browser or an app)"
        if key == SECRET_KEY_ENV
        else ""
    )
    return (
        f"examples:\n{lines}\n\n"
        f"The project's {kind} key comes from {key}, and only from there{server_side}: keys\n"
        "are never taken from the command line, where other users of the machine could\n"
        f"read them, and never printed. The base URL comes from --base-url or {BASE_URL_ENV}.\n\n"
        f"{_FORMATS}{_CSV if csv else ''}\n{_FAILURE}\n\n{_EXIT_STATUS}"
    )


def add_to_argument(parser: argparse.ArgumentParser) -> None:
    """Add the ``TO`` argument: who gets the code."""
    parser.add_argument(
        "to", metavar="TO", help="an E.164 phone (+79001234567) or an email address"
    )


def add_channel_argument(parser: argparse.ArgumentParser, dest: str) -> None:
    """Add the channel argument, as ``dest`` (kod.mobi names it per call)."""
    parser.add_argument(
        dest, metavar=dest.upper(), help="the channel: whatsapp, telegram, sms, email, ..."
    )


def add_flow_options(
    parser: argparse.ArgumentParser, *, formats: tuple[str, ...], challenge: bool
) -> None:
    """Add the options every flow command has, and the CAPTCHA ones where it takes them.

    Args:
        parser: The command's parser.
        formats: The output formats it offers.
        challenge: Add ``--challenge-token`` and ``--challenge-header``.
    """
    if challenge:
        parser.add_argument(
            "--challenge-token",
            metavar="TOKEN",
            help="the solved CAPTCHA token, when the project requires one",
        )
        parser.add_argument(
            "--challenge-header",
            metavar="NAME",
            default=DEFAULT_CHALLENGE_HEADER,
            help="the header that carries it (default: %(default)s)",
        )
    add_base_url_options(parser)
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of the call, retries included (default: %(default)g)",
    )
    parser.add_argument(
        "--language",
        choices=("en", "ru"),
        help="language of kod.mobi's error texts (default: the service's, English)",
    )
    parser.add_argument(
        "--format",
        choices=formats,
        default="table",
        help="output format, see below (default: %(default)s)",
    )


def run_call(
    args: argparse.Namespace,
    scrub: Scrub,
    call: Call,
    *,
    key: str = API_KEY_ENV,
    fields: Iterable[str] = (),
) -> int:
    """Make one call through a client built from the options, and print the answer.

    Args:
        args: The command's parsed options.
        scrub: Hides the keys in whatever is printed.
        call: The call to make.
        key: The variable the call's key comes from.
        fields: The answer's fields, for the CSV header.

    Returns:
        0 when kod.mobi accepted the call, 1 when it refused or the call failed.

    Raises:
        UsageError: A bad option or argument, a missing or rejected key (exit 2).
    """
    objects.check_format(args.format)
    require_env_key(key)
    options: dict[str, Any] = {"timeout": args.timeout, "language": args.language}
    if "challenge_header" in args:
        options["challenge_header"] = args.challenge_header
    client = build_client(args, **options)
    try:
        answer = asyncio.run(_once(client, call))
    except (ConfigurationError, InvalidArgumentError) as exc:
        raise UsageError(str(exc)) from None
    except (AuthenticationError, PermissionDeniedError) as exc:
        msg = f"{exc}; check {key}"
        raise UsageError(msg) from None
    except KodMobiError as exc:
        failure = objects.failure_record(exc, scrub)
        objects.write_object(failure, args.format, sys.stdout, fields=fields)
        sys.stdout.flush()
        reason = exc.sys_message if isinstance(exc, APIStatusError) else None
        say(f"{args.command} failed: {reason or type(exc).__name__}", scrub)
        return EXIT_FAILED
    record = objects.object_record(answer, scrub)
    objects.write_object(record, args.format, sys.stdout, fields=fields)
    sys.stdout.flush()
    return EXIT_OK


async def _once(client: KodMobiClient, call: Call) -> object:
    async with client:
        return await call(client)
