"""Tutorial, step 3: look up many sessions at once.

Usage: ``python tutorial_batch.py [SESSION_ID ...]``. With ``KODMOBI_BASE_URL`` and
``KODMOBI_API_KEY`` set it asks that service; otherwise it starts the SDK's fake
kod.mobi on a loopback port and asks it about a few sessions, one of them unknown and
one not even a session id.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Sequence

from kodmobi_async import KodMobiClient
from kodmobi_async.testing import FakeKodMobi, new_session_id


async def check_sessions(client: KodMobiClient, session_ids: Iterable[str]) -> None:
    results = await client.gather_session_channels(session_ids, concurrency=20)
    print(f"{len(results.ok)} looked up, {len(results.errors)} failed")
    for session_id, channels in results.ok.items():
        ready = [str(c.type) for c in channels if c.is_active and not c.is_blocked]
        print(f"  {session_id}: {', '.join(ready) or 'no channel ready'}")
    for session_id, error in results.errors.items():
        print(f"  {session_id}: {type(error).__name__}")


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the step against a fake kod.mobi, or the service in ``KODMOBI_BASE_URL``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("KODMOBI_BASE_URL"):
        async with KodMobiClient() as client:
            await check_sessions(client, args)
        return

    async with FakeKodMobi() as fake:
        known = fake.add_sessions(3)
        fake.set_channel_state(known[0], "whatsapp", is_active=False)
        session_ids = [*known, new_session_id(), "not-a-session-id", known[1]]
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:
            await check_sessions(client, session_ids)


if __name__ == "__main__":
    asyncio.run(main())
