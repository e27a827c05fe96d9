"""``kodmobi manual-send``: deliver a code your backend generated (manual mode)."""

from __future__ import annotations

import argparse
from typing import Final

from .._models import ManualMessage
from .._protocol import SECRET_KEY_ENV
from .common import Commands, Scrub, new_command, positive_int
from .flow import add_channel_argument, add_flow_options, add_to_argument, flow_epilog, run_call
from .objects import FLAT_FORMATS, field_names

__all__ = ["add_parser", "run"]

NAME: Final = "manual-send"
SUMMARY: Final = "deliver a code in manual mode, with the secret key"

_EXAMPLES: Final = (
    f"export {SECRET_KEY_ENV}=...                  # the project's secret key",
    "kodmobi manual-send +79001234567 sms --code 4821",
    "kodmobi manual-send user@example.com email --callback-url https://example.com/kodmobi",
)


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi manual-send`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Deliver a code to TO over CHANNEL through kod.mobi's POST /manual/send, with\n"
            "the project's secret key, and print kod.mobi's message, the encrypted code\n"
            "and the message id. Never retried once the request may have reached kod.mobi."
        ),
        epilog=flow_epilog(_EXAMPLES, key=SECRET_KEY_ENV, csv=True),
    )
    add_to_argument(parser)
    add_channel_argument(parser, "channel")
    parser.add_argument(
        "--provider-id",
        type=positive_int,
        metavar="N",
        help="the provider to deliver through (default: kod.mobi chooses)",
    )
    parser.add_argument(
        "--code", metavar="C", help="the code, 4 to 6 digits (default: kod.mobi makes one)"
    )
    parser.add_argument(
        "--callback-url",
        metavar="U",
        help="an http(s) URL where kod.mobi reports the delivery",
    )
    add_flow_options(parser, formats=FLAT_FORMATS, challenge=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi manual-send``; return its exit status."""
    return run_call(
        args,
        scrub,
        lambda client: client.manual_send(
            args.to,
            args.channel,
            provider_id=args.provider_id,
            code=args.code,
            callback_url=args.callback_url,
        ),
        key=SECRET_KEY_ENV,
        fields=field_names(ManualMessage),
    )
