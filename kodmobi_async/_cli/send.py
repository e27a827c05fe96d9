"""``kodmobi send``: send a session's code again, over a channel."""

from __future__ import annotations

import argparse
from typing import Final

from .._protocol import API_KEY_ENV
from .common import Commands, Scrub, new_command
from .flow import add_channel_argument, add_flow_options, flow_epilog, run_call
from .objects import NESTED_FORMATS

__all__ = ["add_parser", "run"]

NAME: Final = "send"
SUMMARY: Final = "send a session's code again, over a channel"

_EXAMPLES: Final = (
    "kodmobi send 01HZX3Q8V6W4T1N6B2C3D4E5F6 sms    # the code again, by SMS",
    "kodmobi send 01HZX3Q8V6W4T1N6B2C3D4E5F6 telegram --format json",
)


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi send`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Send the session's code again over TYPE, through kod.mobi's POST /session/send.\n"
            "Each channel then cools down for 60 s: a send before that is refused\n"
            "(ERROR_MESSAGE_ATTEMPT, error_params timeout). A new send replaces the code.\n"
            "Never retried once the request may have reached kod.mobi."
        ),
        epilog=flow_epilog(_EXAMPLES, key=API_KEY_ENV, csv=False),
    )
    parser.add_argument("session_id", metavar="SESSION_ID", help="the session (a ULID)")
    add_channel_argument(parser, "type")
    add_flow_options(parser, formats=NESTED_FORMATS, challenge=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi send``; return its exit status."""
    return run_call(
        args,
        scrub,
        lambda client: client.send_code(
            args.session_id, args.type, challenge_token=args.challenge_token
        ),
    )
