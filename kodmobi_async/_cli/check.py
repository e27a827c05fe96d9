"""``kodmobi check``: check the code a user typed, for a verify token."""

from __future__ import annotations

import argparse
from typing import Final

from .._models import CodeCheck
from .._protocol import API_KEY_ENV
from .common import Commands, Scrub, new_command
from .flow import add_flow_options, flow_epilog, run_call
from .objects import FLAT_FORMATS, field_names

__all__ = ["add_parser", "run"]

NAME: Final = "check"
SUMMARY: Final = "check the code a user typed; prints the verify token"

_EXAMPLES: Final = (
    "kodmobi check 01HZX3Q8V6W4T1N6B2C3D4E5F6 4821",
    "kodmobi check 01HZX3Q8V6W4T1N6B2C3D4E5F6 4821 --format json | jq -r .verify_token",
)


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi check`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Check CODE against the session through kod.mobi's POST /v2/check (a path seen\n"
            "in kod.mobi's own JS client, not documented). A right code answers a\n"
            "verify_token, for `kodmobi verify`; a wrong one is refused with\n"
            "ERROR_MESSAGE_WRONG_CODE and error_params count. Never retried once the\n"
            "request may have reached kod.mobi: it could count as a second wrong attempt."
        ),
        epilog=flow_epilog(_EXAMPLES, key=API_KEY_ENV, csv=True),
    )
    parser.add_argument("session_id", metavar="SESSION_ID", help="the session (a ULID)")
    parser.add_argument("code", metavar="CODE", help="the code the user typed, 4 to 6 digits")
    add_flow_options(parser, formats=FLAT_FORMATS, challenge=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi check``; return its exit status."""
    return run_call(
        args,
        scrub,
        lambda client: client.check_code(
            args.session_id, args.code, challenge_token=args.challenge_token
        ),
        fields=field_names(CodeCheck),
    )
