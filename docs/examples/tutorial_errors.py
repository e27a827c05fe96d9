"""Tutorial, step 4: handle what can go wrong with a lookup.

Usage: ``python tutorial_errors.py [SESSION_ID ...]``. With ``KODMOBI_BASE_URL`` and
``KODMOBI_API_KEY`` set it asks that service; otherwise it starts the SDK's fake
kod.mobi on a loopback port and scripts some trouble into it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from kodmobi_async import (
    APIConnectionError,
    InvalidSessionIdError,
    KodMobiClient,
    NotFoundError,
    ServerError,
)
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id


async def describe(client: KodMobiClient, session_id: str) -> str:
    try:
        channels = await client.get_session_channels(session_id)
    except InvalidSessionIdError:
        return "not a session id (nothing was sent)"
    except NotFoundError:
        return "kod.mobi does not know this session; it may have expired"
    except (APIConnectionError, ServerError) as error:
        return f"kod.mobi is unavailable (gave up after {error.attempts} attempts)"
    ready = [str(c.type) for c in channels if c.is_active and not c.is_blocked]
    return f"ready on {', '.join(ready)}"


async def main(argv: Sequence[str] | None = None) -> None:
    """Run the step against a fake kod.mobi, or the service in ``KODMOBI_BASE_URL``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("KODMOBI_BASE_URL"):
        async with KodMobiClient() as client:
            for session_id in args:
                print(f"{session_id}: {await describe(client, session_id)}")
        return

    async with FakeKodMobi() as fake:
        healthy, flaky, down = fake.add_sessions(3)
        fake.script_session(flaky, Fault.status(503), times=2)  # recovers on attempt 3
        fake.script_session(down, Fault.status(503), times=None)  # never recovers
        cases = {
            "a healthy session": healthy,
            "a session behind two 503s": flaky,
            "a session whose lookups always fail": down,
            "an unknown session": new_session_id(),
            "a malformed id": "01HZX3Q8V6W4T1N6B2C3D4E5F",
        }
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:
            for label, session_id in cases.items():
                print(f"{label}: {await describe(client, session_id)}")


if __name__ == "__main__":
    asyncio.run(main())
