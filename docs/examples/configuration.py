"""Configuration: every constructor argument, and the SDK's logging.

Usage: ``python configuration.py``. It starts the SDK's fake kod.mobi on a loopback
port, unless ``KODMOBI_BASE_URL`` is set, and shows what the SDK logs (with session
ids masked and the key nowhere).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from unittest import mock

import aiohttp

from kodmobi_async import KodMobiClient, KodMobiError, RetryPolicy
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id


def make_client(api_key: str | None = None, base_url: str | None = None) -> KodMobiClient:
    return KodMobiClient(
        api_key,  # default: $KODMOBI_API_KEY
        base_url=base_url,  # default: $KODMOBI_BASE_URL, then https://api.kod.mobi
        timeout=5.0,  # default 10 s, for the whole call: every attempt and wait
        retry=RetryPolicy(attempts=3),  # default RetryPolicy(): 4 attempts, budget 100
        max_connections=20,  # default 100: size of the pool the client owns
        language="ru",  # default None: kod.mobi's own default, English
    )


async def through_your_session(session_id: str) -> None:
    """Send the SDK's requests through an aiohttp session you configured yourself."""
    # trust_env=True: honour HTTPS_PROXY and friends, which the SDK's own pool ignores.
    async with (
        aiohttp.ClientSession(trust_env=True) as session,
        KodMobiClient(session=session) as client,
    ):
        await client.get_session_channels(session_id)
    # Leaving `KodMobiClient` left your session open; its own `async with` closed it.


def log_sdk_to_stdout() -> logging.Handler:
    """Show the SDK's log: a DEBUG line per attempt, a WARNING per retry."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    sdk_logger = logging.getLogger("kodmobi_async")
    sdk_logger.addHandler(handler)
    sdk_logger.setLevel(logging.DEBUG)
    return handler


async def demo() -> None:
    """Use the configured client, against a fake kod.mobi unless configured."""
    if os.environ.get("KODMOBI_BASE_URL"):
        async with make_client() as client:
            print(repr(client))
            await client.get_session_channels()
        return

    async with FakeKodMobi() as fake:
        session_id = fake.add_session()
        fake.script_session(session_id, Fault.status(503), times=1)
        async with make_client(fake.api_key, fake.url) as client:
            print(repr(client))  # no key in it
            await client.get_session_channels(session_id)  # a 503, a retry, a 200
            try:
                await client.get_session_channels(new_session_id())
            except KodMobiError as error:
                print(f"{type(error).__name__}: {error}")  # kod.mobi's text, in Russian

        env = {"KODMOBI_API_KEY": fake.api_key, "KODMOBI_BASE_URL": fake.url}
        with mock.patch.dict(os.environ, env):
            await through_your_session(session_id)


async def main() -> None:
    """Run :func:`demo` with the SDK's log shown on stdout."""
    sdk_logger = logging.getLogger("kodmobi_async")
    level = sdk_logger.level
    handler = log_sdk_to_stdout()
    try:
        await demo()
    finally:
        sdk_logger.removeHandler(handler)
        sdk_logger.setLevel(level)


if __name__ == "__main__":
    asyncio.run(main())
