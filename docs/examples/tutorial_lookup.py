"""Tutorial, step 2: look up the channels of the project, then of one session.

Usage: ``python tutorial_lookup.py [SESSION_ID]``. With ``KODMOBI_BASE_URL`` and
``KODMOBI_API_KEY`` set it asks that service; otherwise it starts the SDK's fake
kod.mobi on a loopback port, with one session in it, and asks that.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from kodmobi_async import ChannelType, KodMobiClient
from kodmobi_async.testing import FakeKodMobi, default_channels


async def show_project(client: KodMobiClient) -> None:
    channels = await client.get_session_channels()
    print("The project sends codes by:", ", ".join(str(c.type) for c in channels))


async def show_session(client: KodMobiClient, session_id: str) -> None:
    for channel in await client.get_session_channels(session_id):
        if not isinstance(channel.type, ChannelType):
            print(f"  {channel.name}: a channel type this SDK does not know yet")
        elif not channel.is_active:
            print(f"  {channel.name}: not reachable, the user must first open {channel.link}")
        elif channel.is_blocked:
            print(f"  {channel.name}: can send again in {channel.timeout} s")
        else:
            print(f"  {channel.name}: ready")


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the step against a fake kod.mobi, or the service in ``KODMOBI_BASE_URL``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("KODMOBI_BASE_URL"):
        async with KodMobiClient() as client:
            await show_project(client)
            for session_id in args:
                print(f"Session {session_id}:")
                await show_session(client, session_id)
        return

    async with FakeKodMobi() as fake:
        # A session as kod.mobi might hold it: a code just went out by SMS, and the
        # project has a channel this version of the SDK has never heard of.
        channels = [*default_channels(), {"type": "max", "name": "MAX"}]
        session_id = fake.add_session(channels=channels)
        fake.set_channel_state(session_id, "sms", timeout=42)
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:
            await show_project(client)
            print(f"Session {session_id}:")
            await show_session(client, session_id)


if __name__ == "__main__":
    asyncio.run(main())
