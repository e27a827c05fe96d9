"""What every benchmark client asks for: the same ids, the same key, the same answer.

Shared by the harness (``run.py``), the servers (``servers.py``) and the clients
(``clients.py``), so that a difference in the table is a difference between clients.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

__all__ = [
    "API_KEY",
    "CHANNELS_PATH",
    "SEED",
    "canned_channels",
    "canned_channels_body",
    "session_ids",
]

#: Sent as ``x-api-key``; nginx ignores it, the fake server checks it.
API_KEY = "kodmobi-bench-key"
CHANNELS_PATH = "/session/channels"
#: Every process draws the same id sequence, so the fake server can know them all.
SEED = 20_000

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def session_ids(count: int, seed: int = SEED) -> Iterator[str]:
    """Yield ``count`` random, valid, distinct-in-practice session ids, lazily.

    Each is a ULID as the brief of issue 3 fixes it: ``'0'`` then 25 characters of
    Crockford base32 (125 random bits, so two ids collide with negligible probability).
    Nothing is built up front, so a million ids cost no memory.

    Args:
        count: How many ids to yield.
        seed: Seed of the pseudo-random sequence; the same seed gives the same ids.

    Yields:
        Session ids.
    """
    rng = random.Random(seed)
    alphabet = _CROCKFORD
    for _ in range(count):
        yield "0" + "".join(rng.choices(alphabet, k=25))


def canned_channels() -> list[dict[str, Any]]:
    """The channel list every lookup answers with: four channels, one inactive.

    It is the fake server's default project (one channel of each documented type,
    Telegram inactive with an extra ``description`` field), so nginx and the fake send
    the same bytes and the SDK validates a realistic payload.

    Returns:
        Fresh channel dicts.
    """
    from kodmobi_async.testing import default_channels

    return default_channels()


def canned_channels_body(description: str | None = None) -> str:
    """:func:`canned_channels` as compact JSON text.

    Args:
        description: Replaces the Telegram channel's ``description``; the harness puts
            the request's session id there to make every answer's bytes different.
    """
    channels = canned_channels()
    if description is not None:
        for channel in channels:
            if "description" in channel:
                channel["description"] = description
    return json.dumps(channels, separators=(",", ":"))
