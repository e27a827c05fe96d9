"""Test helpers: a fake kod.mobi server that runs on a loopback port.

The fake serves the whole one-time-code flow (create a session, send and re-send a code,
check it, verify the result, the manual mode and the project settings) with state on an
injectable clock, and can be scripted to misbehave (error statuses, dropped connections,
broken or huge bodies, redirects) so that timeouts, retries, pooling and cancellation are
tested over real sockets::

    from kodmobi_async.testing import FakeKodMobi, Fault

    async with FakeKodMobi() as fake:
        session_id = fake.add_session()
        fake.script(Fault.status(503), times=2)
        ...  # point the client at fake.url with fake.api_key (fake.secret_key too)

From sync code, or from another event loop, run it in a background thread with
``with FakeKodMobi.in_thread() as fake``. Installing the package also registers pytest
fixtures: ``kodmobi_fake`` (a fake in a thread) and ``kodmobi_fake_env`` (the same,
with ``KODMOBI_API_KEY`` and ``KODMOBI_BASE_URL`` pointing at it).
"""

from __future__ import annotations

from kodmobi_async._clock import FakeClock

from ._faults import Fault
from ._record import RecordedRequest
from ._server import FakeKodMobi
from ._state import Delivery, default_channels, new_session_id

__all__ = [
    "Delivery",
    "FakeClock",
    "FakeKodMobi",
    "Fault",
    "RecordedRequest",
    "default_channels",
    "new_session_id",
]
