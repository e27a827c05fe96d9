"""Run a fake server on its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Protocol

_THREAD_START_TIMEOUT_SECONDS = 30.0


class _Server(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


class ServerThread:
    """Runs a fake under ``asyncio.run`` in a daemon thread until told to stop."""

    def __init__(self, fake: _Server) -> None:
        self._fake = fake
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kodmobi-fake", daemon=True)

    def start(self) -> None:
        self._thread.start()
        try:
            self._started.result(timeout=_THREAD_START_TIMEOUT_SECONDS)
        except BaseException:
            self._thread.join(_THREAD_START_TIMEOUT_SECONDS)
            raise

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            # Whatever escapes here would die with the thread; hand it to the caller.
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                self._error = exc

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._fake.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self._fake.close()
