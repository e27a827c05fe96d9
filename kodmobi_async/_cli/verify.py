"""``kodmobi verify``: verify a token with the secret key, as a backend does."""

from __future__ import annotations

import argparse
from typing import Final

from .._models import Verification
from .._protocol import SECRET_KEY_ENV
from .common import Commands, Scrub, new_command
from .flow import add_flow_options, flow_epilog, run_call
from .objects import FLAT_FORMATS, field_names

__all__ = ["add_parser", "run"]

NAME: Final = "verify"
SUMMARY: Final = "verify a verify token with the secret key; prints who it proves"

_EXAMPLES: Final = (
    f"export {SECRET_KEY_ENV}=...                  # the project's secret key",
    "kodmobi verify 'Jx3...token'                   # from `kodmobi check`",
)


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi verify`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Verify VERIFY_TOKEN (from `kodmobi check`) through kod.mobi's /verify, with\n"
            "the project's secret key, and print the phone or address it proves. A token\n"
            "verifies once: a second verify is refused (404, ERROR_MESSAGE_NOT_FOUND).\n"
            "The path and schema are not in kod.mobi's docs."
        ),
        epilog=flow_epilog(_EXAMPLES, key=SECRET_KEY_ENV, csv=True),
    )
    parser.add_argument(
        "verify_token", metavar="VERIFY_TOKEN", help="the token `kodmobi check` printed"
    )
    add_flow_options(parser, formats=FLAT_FORMATS, challenge=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi verify``; return its exit status."""
    return run_call(
        args,
        scrub,
        lambda client: client.verify(args.verify_token),
        key=SECRET_KEY_ENV,
        fields=field_names(Verification),
    )
