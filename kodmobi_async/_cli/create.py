"""``kodmobi create``: create a verification session for a phone or an email."""

from __future__ import annotations

import argparse
from typing import Final

from .._protocol import API_KEY_ENV
from .common import Commands, Scrub, new_command
from .flow import add_flow_options, add_to_argument, flow_epilog, run_call
from .objects import NESTED_FORMATS

__all__ = ["add_parser", "run"]

NAME: Final = "create"
SUMMARY: Final = "create a session for a phone or an email, and send it a code"

_EXAMPLES: Final = (
    "kodmobi create +79001234567                 # a code over the default channel",
    "kodmobi create user@example.com --format json",
    "kodmobi create +79001234567 --type sms --no-send",
)


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi create`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Create a verification session for TO through kod.mobi's POST /session/create,\n"
            "and send a code. While a session for TO lives (3 minutes), kod.mobi returns it\n"
            "again. The request is retried only when it provably never reached kod.mobi, so\n"
            "it never causes a second message."
        ),
        epilog=flow_epilog(_EXAMPLES, key=API_KEY_ENV, csv=False),
    )
    add_to_argument(parser)
    parser.add_argument(
        "--type",
        metavar="TYPE",
        help="the channel to send over: whatsapp, telegram, sms, email, ... (default: "
        "the one TO used before, else the project's first that fits)",
    )
    parser.add_argument(
        "--no-send",
        dest="send",
        action="store_false",
        help="only create the session (or return the live one); send nothing",
    )
    add_flow_options(parser, formats=NESTED_FORMATS, challenge=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi create``; return its exit status."""
    return run_call(
        args,
        scrub,
        lambda client: client.create_session(
            args.to, type=args.type, send=args.send, challenge_token=args.challenge_token
        ),
    )
