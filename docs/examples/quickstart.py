"""Quick start: print the channels of a kod.mobi project.

Run it with ``KODMOBI_API_KEY`` (and optionally ``KODMOBI_BASE_URL``) set to talk to a
real kod.mobi project; without ``KODMOBI_BASE_URL`` it starts the SDK's fake kod.mobi
on a loopback port and runs against that.
"""

import asyncio

from kodmobi_async import KodMobiClient


async def quickstart() -> None:
    async with KodMobiClient() as client:  # the key comes from KODMOBI_API_KEY
        for channel in await client.get_session_channels():
            print(channel.type, channel.name, "active" if channel.is_active else "inactive")


async def main() -> None:
    """Run :func:`quickstart`, against a fake kod.mobi unless ``KODMOBI_BASE_URL`` is set."""
    import os
    from unittest import mock

    from kodmobi_async.testing import FakeKodMobi

    if os.environ.get("KODMOBI_BASE_URL"):
        await quickstart()
        return
    async with FakeKodMobi() as fake:
        env = {"KODMOBI_API_KEY": fake.api_key, "KODMOBI_BASE_URL": fake.url}
        with mock.patch.dict(os.environ, env):
            await quickstart()


if __name__ == "__main__":
    asyncio.run(main())
