"""pytest fixtures that put a fake kod.mobi server behind the code under test.

pytest loads this module in every run of every project that installs kodmobi-async
(through the ``pytest11`` entry point), so it imports nothing heavy at module level and
does not depend on pytest-asyncio: the fake is imported inside the fixtures and runs on
its own event loop in a background thread, which works the same from sync tests,
pytest-asyncio tests of any loop scope, anyio tests and FastAPI's TestClient.

An ``async def`` test that uses these fixtures but that no async plugin runs (the
usual case: pytest-asyncio in its default strict mode, test not marked) fails with a
message that says what to set, instead of pytest's generic "install a plugin".
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from kodmobi_async.testing import FakeKodMobi

_FIXTURES: Final = ("kodmobi_fake", "kodmobi_fake_env")


@pytest.hookimpl
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    """Fail an unrun ``async def`` test that uses our fixtures, saying what to set.

    A plain (neither tryfirst nor trylast) implementation runs after the async plugins
    have had their turn (anyio runs the test itself; pytest-asyncio has already made
    the function synchronous) and before pytest's own, which would fail with a message
    that does not fit a user who has pytest-asyncio installed.

    Args:
        pyfuncitem: The test about to be called.

    Raises:
        pytest.fail.Exception: The test is still a coroutine function and uses
            ``kodmobi_fake`` or ``kodmobi_fake_env``.
    """
    function = pyfuncitem.obj
    if not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)):
        return
    used = [name for name in _FIXTURES if name in pyfuncitem.fixturenames]
    if not used:
        return
    pytest.fail(_unrun_async_test_message(pyfuncitem, used[0]), pytrace=False)


def _unrun_async_test_message(item: pytest.Function, fixture: str) -> str:
    head = f"{item.name} is an async def test (it uses {fixture}) that no plugin ran"
    if item.config.pluginmanager.has_plugin("asyncio"):
        return (
            f"{head}: pytest-asyncio runs only tests marked @pytest.mark.asyncio in its "
            "strict mode, the default. Either mark the test (or its module: pytestmark = "
            'pytest.mark.asyncio), or set asyncio_mode = "auto" under '
            "[tool.pytest.ini_options] in pyproject.toml (asyncio_mode = auto under "
            f"[pytest] in pytest.ini). {fixture} is a plain fixture and works in both modes."
        )
    return (
        f"{head}: pytest cannot run async tests by itself. Install pytest-asyncio and "
        'set asyncio_mode = "auto" under [tool.pytest.ini_options] in pyproject.toml (or '
        "mark the test @pytest.mark.asyncio), or mark it @pytest.mark.anyio to use anyio's "
        f"plugin. {fixture} is a plain fixture and needs neither."
    )


@pytest.fixture
def kodmobi_fake() -> Iterator[FakeKodMobi]:
    """Yield a running fake kod.mobi server, fresh for each test.

    Point the client at ``kodmobi_fake.url`` with ``kodmobi_fake.api_key``; add
    sessions and script faults on it as the test needs.

    Yields:
        The fake, serving from a background thread until the test ends.
    """
    # Imported here so that loading the plugin stays cheap (see the module docstring).
    from kodmobi_async.testing import FakeKodMobi

    with FakeKodMobi.in_thread() as fake:
        yield fake


@pytest.fixture
def kodmobi_fake_env(kodmobi_fake: FakeKodMobi, monkeypatch: pytest.MonkeyPatch) -> FakeKodMobi:
    """Point ``KODMOBI_API_KEY``, ``KODMOBI_SECRET_KEY`` and ``KODMOBI_BASE_URL`` at the
    ``kodmobi_fake`` server.

    Code that builds its client from the environment then talks to the fake. The
    variables are restored when the test ends.

    Args:
        kodmobi_fake: The running fake.
        monkeypatch: pytest's monkeypatch fixture.

    Returns:
        The same fake as ``kodmobi_fake``.
    """
    monkeypatch.setenv("KODMOBI_API_KEY", kodmobi_fake.api_key)
    monkeypatch.setenv("KODMOBI_SECRET_KEY", kodmobi_fake.secret_key)
    monkeypatch.setenv("KODMOBI_BASE_URL", kodmobi_fake.url)
    return kodmobi_fake
