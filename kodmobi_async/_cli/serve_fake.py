"""``kodmobi serve-fake``: the SDK's fake kod.mobi in the foreground, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .._protocol import API_KEY_ENV, BASE_URL_ENV, SECRET_KEY_ENV
from .common import (
    EXIT_OK,
    Commands,
    Scrub,
    UsageError,
    burst,
    new_command,
    non_negative_int,
    port,
    say,
    server_rate,
)

__all__ = ["add_parser", "run"]

NAME: Final = "serve-fake"
SUMMARY: Final = "run the fake kod.mobi server in the foreground"
SERVE_FAKE_SESSIONS: Final = 3
_SHOWN_SESSIONS: Final = 5
_COMPUTED: Final = "computed"
_NO_HEADER: Final = "none"
_DEFAULT_RETRY_AFTER: Final = 1
#: The phone the banner's example sends to.
_EXAMPLE_PHONE: Final = "+15550001234"

_EPILOG: Final = f"""\
examples:
  kodmobi serve-fake --port 8765 --sessions 100 --write-ids ids.txt
  kodmobi serve-fake --rate-limit 50 --burst 5 --retry-after computed
  # in another shell:
  export {BASE_URL_ENV}=http://127.0.0.1:8765 {API_KEY_ENV}=kodmobi-fake-public-key
  kodmobi channels --from-file ids.txt

The fake answers GET /session/channels like kod.mobi: the project's channels, a
session's channels, 400 for a malformed id, 404 for an unknown one, 401 for a wrong
key. It also serves the whole one-time-code flow (kodmobi create, send, check, verify,
manual-send), with state: sessions live 3 minutes, a channel cools down 60 s after a
send, a verify token verifies once; it takes {SECRET_KEY_ENV}=kodmobi-fake-secret-key
for verify and manual-send. With --rate-limit it admits that many requests a second
per key (a token bucket holding --burst requests) and answers the excess 429 with
Retry-After, as kod.mobi's gateway does. It stops cleanly on Ctrl-C or SIGTERM."""


def _retry_after(text: str) -> int | str | None:
    if text in (_COMPUTED, _NO_HEADER):
        return None if text == _NO_HEADER else _COMPUTED
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError:
        msg = f"expected whole seconds >= 0, {_COMPUTED!r} or {_NO_HEADER!r}, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def add_parser(commands: Commands) -> None:
    """Add ``kodmobi serve-fake`` and its options to ``commands``."""
    parser = new_command(
        commands,
        NAME,
        summary=SUMMARY,
        description=(
            "Run the SDK's fake kod.mobi on loopback until Ctrl-C, and print its URL,\n"
            "the keys it accepts and some session ids, for your own code or curl."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--port",
        type=port,
        default=0,
        metavar="PORT",
        help="port on 127.0.0.1 to listen on (default: a free one)",
    )
    parser.add_argument(
        "--sessions",
        type=non_negative_int,
        default=SERVE_FAKE_SESSIONS,
        metavar="N",
        help="sessions to create (default: %(default)s)",
    )
    parser.add_argument(
        "--write-ids", metavar="PATH", help="write every session id to PATH, one per line"
    )
    parser.add_argument(
        "--rate-limit",
        type=server_rate,
        metavar="R",
        help="admit R requests a second per API key, 429 above that (default: no limit)",
    )
    parser.add_argument(
        "--burst",
        type=burst,
        metavar="B",
        help="requests a key may send at once, with --rate-limit (default: R/10, at least 1)",
    )
    parser.add_argument(
        "--retry-after",
        type=_retry_after,
        default=argparse.SUPPRESS,
        metavar="N|computed|none",
        help="Retry-After of a 429, with --rate-limit: N whole seconds, 'computed' (the "
        "wait until the key may send again) or 'none' for no header (default: "
        f"{_DEFAULT_RETRY_AFTER})",
    )
    parser.set_defaults(handler=run)


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


def run(args: argparse.Namespace, scrub: Scrub) -> int:
    """Run ``kodmobi serve-fake`` until a signal; return its exit status."""
    limits = _rate_limit_options(args)
    try:
        requests = asyncio.run(_serve_fake(args.port, args.sessions, args.write_ids, limits))
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        requests = None
    served = "" if requests is None else f" after {requests} request(s)"
    say(f"fake kod.mobi stopped{served}", scrub)
    return EXIT_OK


async def _serve_fake(
    port: int, sessions: int, write_ids: str | None, limits: dict[str, Any]
) -> int:
    from ..testing import FakeKodMobi  # aiohttp.web is only needed here

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
            keys = (fake.api_key, fake.secret_key)
            print(_banner(fake.url, keys, ids, write_ids, limit), flush=True)
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
    url: str,
    keys: tuple[str, str],
    ids: list[str],
    write_ids: str | None,
    limit: str | None = None,
) -> str:
    key, secret = keys
    shown = " ".join(ids[:_SHOWN_SESSIONS])
    more = len(ids) - _SHOWN_SESSIONS
    if more > 0:
        shown += f" (+{more} more" + (f", all in {write_ids})" if write_ids else ")")
    example = ids[0] if ids else "01HZX3Q8V6W4T1N6B2C3D4E5F6"
    lines = [
        f"Fake kod.mobi serving on {url} (Ctrl-C to stop)",
        f"API key:  {key}",
        f"Secret:   {secret} (the secret key, for verify and manual-send)",
        f"Sessions: {shown or 'none'}",
        *([limit] if limit else []),
        "",
        "Point the SDK or the CLI at it:",
        f"  export {BASE_URL_ENV}={url} {API_KEY_ENV}={key} {SECRET_KEY_ENV}={secret}",
        f"  kodmobi channels {example}",
        f"  kodmobi create {_EXAMPLE_PHONE}",
        f"  curl -H 'x-api-key: {key}' '{url}/session/channels?session_id={example}'",
    ]
    return "\n".join(lines)
