"""``kodmobi demo``: the SDK against its own fake kod.mobi, a batch and then the flow.

The batch part (faults, a rate limit, thousands of lookups) is :mod:`kodmobi_async._demo`.
The flow part then walks one user through the one-time-code flow on a fresh fake, with
the calls ``kodmobi create``, ``send``, ``check`` and ``verify`` make: a session for a
phone, a re-send refused during the channel's cool-down, a wrong code refused, the right
code (read from the fake, as a test would) accepted, its verify token verified with the
secret key, and verified again, refused: a token verifies once. Each step says what
kod.mobi answered and whether that is what the real service is meant to answer.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Awaitable, Callable
from typing import IO, Final

import attrs

from .. import _cli_output
from .._client import KodMobiClient
from .._errors import APIStatusError, KodMobiError
from .channels import DEFAULT_CONCURRENCY
from .common import EXIT_FAILED, EXIT_OK, Commands, Scrub, new_command, positive_int

__all__ = ["FLOW_PHONE", "add_parser", "run", "run_flow"]

NAME: Final = "demo"
SUMMARY: Final = "run the SDK against an embedded fake kod.mobi, faults included"
DEMO_SESSIONS: Final = 2000
#: The phone the flow part verifies (a number reserved for fiction).
FLOW_PHONE: Final = "+15550001234"
_LABEL_WIDTH: Final = 27

#: Reads the code a session was sent, as ``FakeKodMobi.code_for`` does.
FakeCodes = Callable[[str], str]

_EPILOG: Final = """\
examples:
  kodmobi demo                         # 2000 sessions, faults scripted in, then the flow
  kodmobi demo --sessions 5000 --no-faults

The demo starts a fake kod.mobi on loopback in this process and scripts faults:
some sessions get one dropped connection, some one 503, the one in the middle a 503
with Retry-After: 1 (which pauses the whole client), and some ids are unknown (404
expected). The fake also admits only 400 requests/s (429 above that), so the client
has to find that pace. It then looks every session up through the real client and
reports what happened.

Then it walks one user through the one-time-code flow on a fresh fake: create a
session for a phone, re-send during the cool-down (refused), check a wrong code
(refused), check the right one, verify the token with the secret key, and verify it
again (refused: a token verifies once).

exit status:
  0    every session ended as scripted, and the flow went as expected
  1    some did not
  2    usage error"""


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi demo`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Start a fake kod.mobi on loopback, script faults into it, look every session\n"
            "up through the real client and report; then walk the one-time-code flow.\n"
            "Needs no network and no key."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--sessions",
        type=positive_int,
        default=DEMO_SESSIONS,
        metavar="N",
        help="how many session ids to look up (default: %(default)s)",
    )
    parser.add_argument(
        "--faults",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="script dropped connections, 503s, unknown ids and a rate limit (default: on)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="lookups in flight at once (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi demo``; return its exit status."""
    _cli_output.require_rich()
    from .._demo import run_demo  # keeps the fake server's imports off the other commands

    passed = asyncio.run(
        run_demo(
            sessions=args.sessions,
            faults=args.faults,
            concurrency=args.concurrency,
            show_progress=_cli_output.is_terminal(sys.stderr),
            out=sys.stdout,
        )
    )
    flowed = asyncio.run(run_flow(sys.stdout))
    return EXIT_OK if passed and flowed else EXIT_FAILED


@attrs.frozen
class _Step:
    """One call of the flow: what was asked, what kod.mobi answered, and if as meant."""

    call: str
    answer: str
    expected: bool


async def _refusal(call: Awaitable[object]) -> APIStatusError | None:
    """Make a call meant to be refused; return the refusal, None if it was accepted."""
    try:
        await call
    except APIStatusError as error:
        return error
    return None


def _refused(error: APIStatusError | None, *, why: str) -> str:
    if error is None:
        return "accepted (it should not have been)"
    params = "".join(f" {key}={value}" for key, value in error.error_params.items())
    return f"refused: {error.status} {error.sys_message}{params} ({why})"


def _wrong_code(code: str) -> str:
    """A code of the same length that is surely not ``code``."""
    return "".join(str((int(digit) + 1) % 10) for digit in code)


async def _walk(client: KodMobiClient, code_for: FakeCodes) -> list[_Step]:
    steps = []
    session = await client.create_session(FLOW_PHONE)
    sid, channel = session.session_id, str(session.sent_to)
    left = session.session_expired_at - datetime.datetime.now(datetime.timezone.utc)
    steps.append(
        _Step(
            f"create {FLOW_PHONE}",
            f"session {sid}, code sent over {channel}, expires in "
            f"{round(left.total_seconds() / 60)} min",
            session.sent_to is not None,
        )
    )
    cooling = await _refusal(client.send_code(sid, channel))
    steps.append(
        _Step(
            f"send {sid[:6]}… {channel}",
            _refused(cooling, why=f"{channel} cools down 60 s after a send"),
            cooling is not None and cooling.sys_message == "ERROR_MESSAGE_ATTEMPT",
        )
    )
    code = code_for(sid)
    wrong = await _refusal(client.check_code(sid, _wrong_code(code)))
    steps.append(
        _Step(
            f"check {sid[:6]}… {_wrong_code(code)}",
            _refused(wrong, why="not the code it sent"),
            wrong is not None and wrong.sys_message == "ERROR_MESSAGE_WRONG_CODE",
        )
    )
    check = await client.check_code(sid, code)
    steps.append(
        _Step(
            f"check {sid[:6]}… {code}",
            f"accepted: verify_token {check.verify_token[:6]}…, is_test "
            f"{str(check.is_test).lower()}"
            " (the code, read with fake.code_for)",
            not check.is_test,
        )
    )
    verification = await client.verify(check.verify_token)
    steps.append(
        _Step(
            f"verify {check.verify_token[:6]}…",
            f"verified with the secret key: {verification.to}",
            verification.to == FLOW_PHONE,
        )
    )
    again = await _refusal(client.verify(check.verify_token))
    steps.append(
        _Step(
            f"verify {check.verify_token[:6]}…",
            _refused(again, why="a token verifies once"),
            again is not None and again.status == 404,
        )
    )
    return steps


async def run_flow(out: IO[str]) -> bool:
    """Walk one user through the flow on a fresh fake, and print each step to ``out``.

    Args:
        out: Where the steps and the verdict go.

    Returns:
        Whether every step got the answer kod.mobi is meant to give.
    """
    from ..testing import FakeKodMobi  # aiohttp.web is only needed here

    print("\nThe one-time-code flow, one user on a fresh fake:", file=out)
    async with FakeKodMobi() as fake:
        client = KodMobiClient(api_key=fake.api_key, secret_key=fake.secret_key, base_url=fake.url)
        async with client:
            try:
                steps = await _walk(client, fake.code_for)
            except KodMobiError as error:
                steps = [_Step("(the flow stopped)", f"{type(error).__name__}: {error}", False)]
    for step in steps:
        print(f"  {step.call:<{_LABEL_WIDTH}}{step.answer}", file=out)
    missed = [step.call for step in steps if not step.expected]
    verdict = (
        f"yes, all {len(steps)} calls"
        if not missed
        else f"NO: {len(missed)} of {len(steps)} did not ({', '.join(missed)})"
    )
    print(f"{'Flow as expected':<19}{verdict}", file=out, flush=True)
    return not missed
