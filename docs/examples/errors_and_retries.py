"""Errors and retries: what a failed call carries, and how retries are tuned.

Usage: ``python errors_and_retries.py``. It starts the SDK's fake kod.mobi on a
loopback port (or, with ``KODMOBI_BASE_URL`` set, only shows the error of an unknown
session on that service) and uses :class:`~kodmobi_async.FakeClock`, so the retry waits
it prints were planned, not slept.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from kodmobi_async import (
    APIConnectionError,
    APIStatusError,
    FakeClock,
    KodMobiClient,
    KodMobiError,
    RetryPolicy,
)
from kodmobi_async.testing import FakeKodMobi, Fault, new_session_id

# For a request handler that a person is waiting on: fail within 3 s, retry once.
INTERACTIVE = RetryPolicy(attempts=2, max_wait=0.5, max_retry_after=2.0)
# For a nightly job: patient, and a bigger shared budget for thousands of lookups.
NIGHTLY = RetryPolicy(attempts=6, initial_wait=1.0, max_wait=30.0, budget=1000)


def interactive_client(**options: Any) -> KodMobiClient:
    return KodMobiClient(timeout=3.0, retry=INTERACTIVE, **options)


def nightly_client(**options: Any) -> KodMobiClient:
    return KodMobiClient(timeout=120.0, retry=NIGHTLY, **options)


def describe(error: KodMobiError) -> str:
    """Everything a log line or a handler may want from an SDK error."""
    if isinstance(error, APIStatusError):
        return (
            f"{type(error).__name__}: status={error.status} "
            f"sys_message={error.sys_message!r} error={error.error!r} "
            f"error_params={dict(error.error_params)} retry_after={error.retry_after} "
            f"attempts={error.attempts}"
        )
    if isinstance(error, APIConnectionError):
        return f"{type(error).__name__}: attempts={error.attempts} cause={error.__cause__!r}"
    return f"{type(error).__name__}: {error}"


async def waits_for(fake: FakeKodMobi, policy: RetryPolicy, *faults: Fault) -> str:
    """Script ``faults`` for one lookup's requests; report the waits and the ending."""
    for fault in faults:
        fake.script(fault, times=1)
    clock = FakeClock()
    async with KodMobiClient(
        api_key=fake.api_key, base_url=fake.url, retry=policy, clock=clock
    ) as client:
        try:
            await client.get_session_channels()
        except KodMobiError as error:
            ending = type(error).__name__
        else:
            ending = "answered"
    fake.clear_faults()
    return f"waited {clock.sleeps}, then {ending}"


async def main() -> None:
    """Show error fields and retry waits, against a fake kod.mobi unless configured."""
    if os.environ.get("KODMOBI_BASE_URL"):
        async with KodMobiClient() as client:
            try:
                await client.get_session_channels(new_session_id())
            except KodMobiError as error:
                print(describe(error))
        return

    async with FakeKodMobi() as fake:
        options: dict[str, Any] = {"api_key": fake.api_key, "base_url": fake.url}
        async with interactive_client(**options, clock=FakeClock()) as client:
            for fault in (
                Fault.status(404, sys_message="ERROR_MESSAGE_NOT_FOUND", error="Session not found"),
                Fault.status(429, retry_after=30),
                Fault.status(502, html=True),
            ):
                fake.script(fault, times=None)
                try:
                    await client.get_session_channels()
                except KodMobiError as error:
                    print(describe(error))
                fake.clear_faults()

        steady = RetryPolicy(jitter=False)  # the backoff ceilings, without the jitter
        unavailable = Fault.status(503)
        print("503 x4:", await waits_for(fake, steady, *[unavailable] * 4))
        print("503 x2:", await waits_for(fake, steady, unavailable, unavailable))
        print(
            "429, Retry-After 3:", await waits_for(fake, steady, Fault.status(429, retry_after=3))
        )
        print("503, retries off:", await waits_for(fake, RetryPolicy.disabled(), unavailable))


if __name__ == "__main__":
    asyncio.run(main())
