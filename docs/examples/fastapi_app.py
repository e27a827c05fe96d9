"""A FastAPI service that asks kod.mobi about its users' verification sessions.

- One :class:`~kodmobi_async.KodMobiClient` lives as long as the app (the lifespan) and
  is handed to the handlers as a dependency, so every request shares one connection
  pool.
- ``GET /sessions/{session_id}/channels`` returns a session's channels, and turns the
  SDK's errors into HTTP answers this service's own clients can act on.
- ``POST /sessions/check`` looks up a page of sessions at once, with one outcome per id.

Serve it with any ASGI server, configured from the environment::

    KODMOBI_API_KEY=... uvicorn fastapi_app:app

Run as a script (``python fastapi_app.py``), it starts the SDK's fake kod.mobi on a
loopback port, unless ``KODMOBI_BASE_URL`` is set, and sends the app a few requests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kodmobi_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InvalidSessionIdError,
    KodMobiClient,
    KodMobiError,
    NotFoundError,
    Outcome,
    PermissionDeniedError,
    RateLimitError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    ServerError,
    SessionChannel,
)

logger = logging.getLogger(__name__)

# A page of the batch endpoint, and how many of its lookups may run at once. The
# client's pool (100 connections by default) is shared by every request the app
# serves, so one request should not take all of it.
PAGE_SIZE = 100
PAGE_CONCURRENCY = 10


# -- what the app answers -------------------------------------------------------------


class Channel(BaseModel):
    """One channel of a session, as this service's clients see it."""

    name: str
    type: str
    is_active: bool
    timeout: int
    link: str | None

    @classmethod
    def from_sdk(cls, channel: SessionChannel) -> Channel:
        return cls(
            name=channel.name,
            type=str(channel.type),  # a ChannelType, or the raw string of a new type
            is_active=channel.is_active,
            timeout=channel.timeout,
            link=channel.link,
        )


class Problem(BaseModel):
    """What went wrong, for an error response or one id of a batch."""

    status: int
    code: str
    detail: str


class CheckRequest(BaseModel):
    session_ids: list[str] = Field(min_length=1, max_length=PAGE_SIZE)


class SessionCheck(BaseModel):
    """One id of a batch: its channels, or the problem that stopped its lookup."""

    channels: list[Channel] | None = None
    problem: Problem | None = None

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> SessionCheck:
        if isinstance(outcome, KodMobiError):
            return cls(problem=problem_for(outcome))
        return cls(channels=[Channel.from_sdk(c) for c in outcome])


class CheckResponse(BaseModel):
    results: dict[str, SessionCheck]


# -- SDK errors as HTTP answers -------------------------------------------------------


def problem_for(error: KodMobiError) -> Problem:
    """Map an SDK error to the HTTP answer this service gives for it."""
    if isinstance(error, InvalidSessionIdError):
        # The caller sent a malformed id; the SDK's message says what a valid one is.
        return Problem(status=422, code="invalid_session_id", detail=str(error))
    if isinstance(error, NotFoundError):
        detail = "kod.mobi does not know this session; it may have expired"
        return Problem(status=404, code="session_not_found", detail=detail)
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        # Our key is wrong: an operator must fix it. Say so without details (the SDK
        # never puts the key in a message, but the caller needs none of this).
        detail = "the verification service rejected this server's credentials"
        return Problem(status=502, code="upstream_auth_failed", detail=detail)
    if isinstance(error, APITimeoutError):
        return Problem(status=504, code="upstream_timeout", detail="kod.mobi did not answer")
    if isinstance(
        error, APIConnectionError | ServerError | RateLimitError | RetryBudgetExhaustedError
    ):
        # Passing trouble, still there after the SDK's retries: the caller may try later.
        detail = "kod.mobi is unavailable, try again later"
        return Problem(status=503, code="upstream_unavailable", detail=detail)
    # A broken answer (ResponseValidationError), a redirect, an unexpected status; or
    # ConfigurationError or ClientStateError, which are bugs of this service.
    return Problem(status=502, code="upstream_error", detail="kod.mobi failed")


def problem_response(error: KodMobiError) -> JSONResponse:
    """The response for a request whose handler let an SDK error escape."""
    problem = problem_for(error)
    if problem.status >= 500:
        # For the operators: the SDK's messages carry the status, kod.mobi's
        # sys_message and the attempts, and never the API key or a session id.
        logger.warning("kod.mobi lookup failed: %s", error)
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    return JSONResponse(problem.model_dump(), status_code=problem.status, headers=headers)


# -- the app ----------------------------------------------------------------------------


def get_kodmobi(request: Request) -> KodMobiClient:
    """The dependency that hands the app's one client to a handler."""
    client: KodMobiClient = request.app.state.kodmobi
    return client


KodMobi = Annotated[KodMobiClient, Depends(get_kodmobi)]


def create_app(**client_options: Any) -> FastAPI:
    """Build the app; ``client_options`` go to :class:`KodMobiClient`.

    Without options the client reads ``KODMOBI_API_KEY`` and ``KODMOBI_BASE_URL``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Created here, inside the server's event loop, and closed at shutdown.
        async with KodMobiClient(**client_options) as client:
            app.state.kodmobi = client
            yield

    app = FastAPI(title="Sessions", lifespan=lifespan)

    @app.exception_handler(KodMobiError)
    async def on_kodmobi_error(request: Request, error: KodMobiError) -> JSONResponse:
        return problem_response(error)

    @app.get("/sessions/{session_id}/channels")
    async def session_channels(session_id: str, kodmobi: KodMobi) -> list[Channel]:
        channels = await kodmobi.get_session_channels(session_id)
        return [Channel.from_sdk(channel) for channel in channels]

    @app.post("/sessions/check")
    async def check_sessions(page: CheckRequest, kodmobi: KodMobi) -> CheckResponse:
        results = await kodmobi.gather_session_channels(
            page.session_ids, concurrency=PAGE_CONCURRENCY
        )
        return CheckResponse(
            results={sid: SessionCheck.from_outcome(o) for sid, o in results.items()}
        )

    return app


# What `uvicorn fastapi_app:app` serves. A person waits on these answers, so a lookup
# gets 3 s and 2 attempts rather than the defaults (10 s, 4 attempts). The client is
# only created when the server starts the app: importing needs no KODMOBI_API_KEY.
app = create_app(timeout=3.0, retry=RetryPolicy(attempts=2, max_wait=0.5))


# -- a demonstration ---------------------------------------------------------------


async def main() -> None:
    """Send the app a few requests, against a fake kod.mobi unless configured."""
    # Only the demonstration needs these; the service itself does not.
    import httpx

    from kodmobi_async.testing import FakeKodMobi, new_session_id

    async def demo(app: FastAPI, session_id: str) -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as http,
        ):
            for path in (f"/sessions/{session_id}/channels", "/sessions/not-an-id/channels"):
                response = await http.get(path)
                print("GET", path, "->", response.status_code, response.json())
            response = await http.post(
                "/sessions/check", json={"session_ids": [session_id, new_session_id()]}
            )
            print("POST /sessions/check ->", response.status_code, response.json())

    if os.environ.get("KODMOBI_BASE_URL"):
        await demo(create_app(), new_session_id())
        return
    async with FakeKodMobi() as fake:
        await demo(create_app(api_key=fake.api_key, base_url=fake.url), fake.add_session())


if __name__ == "__main__":
    asyncio.run(main())
