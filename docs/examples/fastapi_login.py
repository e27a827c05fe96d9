"""A FastAPI service where people log in with a one-time code sent by kod.mobi.

The flow, one endpoint per step:

1. ``POST /login/start`` creates a kod.mobi session for a phone or an email address and
   sends the code (over the channel the user picked, or the one kod.mobi picks);
   ``GET /login/channels`` lists the channels a login page can offer.
2. ``POST /login/resend`` sends the code again, over another channel.
3. ``POST /login/check`` checks the code the user typed and answers kod.mobi's
   ``verify_token`` (what kod.mobi's own widget would hand the page).
4. ``POST /login/verify`` verifies that token *on this server*, with the project's
   secret key, and only then issues this app's own session: a signed, HttpOnly cookie
   that ``GET /me`` reads.

The secret key never leaves this process: it is read from ``KODMOBI_SECRET_KEY`` and
sent only to kod.mobi's verify call, never in an answer or a log line.

Serve it with any ASGI server, configured from the environment::

    KODMOBI_API_KEY=... KODMOBI_SECRET_KEY=... LOGIN_SESSION_KEY=... \\
        uvicorn fastapi_login:app

Run as a script (``python fastapi_login.py``), it starts the SDK's fake kod.mobi on a
loopback port and logs a user in. With ``KODMOBI_BASE_URL`` set, it only lists the
channels and starts a login for each phone or address given as an argument: the code
then arrives on a real phone, and the rest is for your login page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Cookie, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kodmobi_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidArgumentError,
    KodMobiClient,
    KodMobiError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryBudgetExhaustedError,
    RetryPolicy,
    ServerError,
    SessionChannel,
)

logger = logging.getLogger(__name__)

COOKIE = "login_session"
SESSION_LIFETIME = 12 * 3600  # seconds an app session lasts after a verified login
# Bounds on what callers send, so a huge body is refused before it reaches the SDK,
# which then says precisely what a valid value looks like.
MAX_TO = 254
MAX_CODE = 16
MAX_ID = 64
MAX_TOKEN = 4096


# -- what the app answers -------------------------------------------------------------


class Channel(BaseModel):
    """A channel the code can go over, as a login page shows it."""

    type: str
    name: str
    is_active: bool  # False: the user must open `link` first (e.g. start the Telegram bot)
    wait_seconds: int  # before the code can be sent over it again
    link: str | None

    @classmethod
    def from_sdk(cls, channel: SessionChannel) -> Channel:
        return cls(
            type=str(channel.type),  # a ChannelType, or the raw string of a new type
            name=channel.name,
            is_active=channel.is_active,
            wait_seconds=channel.timeout,
            link=channel.link,
        )


class StartRequest(BaseModel):
    to: str = Field(max_length=MAX_TO)  # "+79001234567" or "ada@example.com"
    channel: str | None = Field(default=None, max_length=MAX_ID)  # None: kod.mobi picks
    challenge_token: str | None = Field(default=None, max_length=MAX_TOKEN)


class Started(BaseModel):
    session_id: str
    expires_at: datetime
    sent_to: str | None
    channels: list[Channel]


class ResendRequest(BaseModel):
    session_id: str = Field(max_length=MAX_ID)
    channel: str = Field(max_length=MAX_ID)
    challenge_token: str | None = Field(default=None, max_length=MAX_TOKEN)


class Resent(BaseModel):
    session_id: str
    expires_at: datetime
    channel: Channel


class CheckRequest(BaseModel):
    session_id: str = Field(max_length=MAX_ID)
    code: str = Field(max_length=MAX_CODE)
    challenge_token: str | None = Field(default=None, max_length=MAX_TOKEN)


class Checked(BaseModel):
    verify_token: str


class VerifyRequest(BaseModel):
    verify_token: str = Field(max_length=MAX_TOKEN)


class LoggedIn(BaseModel):
    user: str
    expires_at: datetime


class Problem(BaseModel):
    """What went wrong, in a form a login page can act on."""

    status: int
    code: str
    detail: str
    retry_after: int | None = None  # seconds before trying again is worth it
    wrong_attempts: int | None = None  # kod.mobi's count of wrong codes so far


class LoginRefusedError(Exception):
    """A refusal of this app's own (not an SDK error), answered as its problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


# -- SDK errors as HTTP answers -------------------------------------------------------

# kod.mobi's sys_messages that are about the user's request, not about this server.
_REFUSALS = {
    "ERROR_SESSION_EXPIRED": (410, "session_expired", "the code has expired; start again"),
    "ERROR_PROJECT_HAS_NO_CHANNEL": (
        422,
        "channel_unavailable",
        "this channel cannot reach that phone or address",
    ),
    "ERROR_CHANNEL_NOT_ALLOWED_COUNTRY": (
        422,
        "channel_unavailable",
        "this channel does not serve that country",
    ),
    "ERROR_USER_NOT_AUTHORIZE_ON_CHANNEL": (
        409,
        "channel_not_enabled",
        "enable this channel first (open its link), or pick another",
    ),
    "ERROR_CHALLENGE": (400, "challenge_failed", "solve the CAPTCHA and try again"),
    "ERROR_PHONE_BLOCKED": (403, "recipient_blocked", "codes cannot be sent there"),
    "ERROR_BLOCKED": (403, "recipient_blocked", "codes cannot be sent there"),
}


def problem_for(error: KodMobiError) -> Problem:
    """Map an SDK error to the HTTP answer this service gives for it."""
    if isinstance(error, InvalidArgumentError):
        # Caught before anything was sent; the message says what a valid value is and
        # never repeats the value itself.
        return Problem(status=422, code=f"invalid_{error.argument}", detail=str(error))
    if isinstance(error, BadRequestError):
        return _refusal(error)
    if isinstance(error, NotFoundError):
        detail = "no such login: it was never started, or its code was already accepted"
        return Problem(status=404, code="login_not_found", detail=detail)
    if isinstance(error, AuthenticationError | PermissionDeniedError | ConfigurationError):
        # A key is wrong or missing: an operator must fix it, the user cannot.
        detail = "logging in is unavailable; the service is misconfigured"
        return Problem(status=500, code="login_misconfigured", detail=detail)
    if (
        isinstance(error, APIConnectionError)
        and error.may_have_reached_server
        and error.method == "POST"
    ):
        # kod.mobi may have acted on it: a code may be on its way, a check may have
        # counted, a token may be spent. The SDK did not retry, so that a user never
        # gets two codes; the user should look before asking again.
        detail = "kod.mobi did not answer; your request may have gone through"
        return Problem(status=503, code="upstream_unavailable", detail=detail)
    if isinstance(
        error, APIConnectionError | ServerError | RateLimitError | RetryBudgetExhaustedError
    ):
        retry_after = getattr(error, "retry_after", None)
        return Problem(
            status=503,
            code="upstream_unavailable",
            detail="kod.mobi is unavailable, try again later",
            retry_after=None if retry_after is None else math.ceil(retry_after),
        )
    # A broken answer, a redirect, an unexpected status, a closed client: our problem.
    return Problem(status=502, code="upstream_error", detail="kod.mobi failed")


def _refusal(error: BadRequestError) -> Problem:
    """A 400 from kod.mobi, by its ``sys_message``."""
    params = error.error_params
    if error.sys_message == "ERROR_MESSAGE_WRONG_CODE":
        count = params.get("count")
        return Problem(
            status=400,
            code="wrong_code",
            detail="that is not the code we sent; check it and try again",
            wrong_attempts=count if isinstance(count, int) else None,
        )
    if error.sys_message == "ERROR_MESSAGE_ATTEMPT":
        timeout = params.get("timeout")
        if isinstance(timeout, int | float) and timeout > 0:
            wait = math.ceil(timeout)
            detail = f"a code was sent a moment ago; ask again in {wait} s"
            return Problem(status=429, code="too_soon", detail=detail, retry_after=wait)
        detail = "too many wrong codes; start again once this code has expired"
        return Problem(status=429, code="too_many_attempts", detail=detail)
    if error.sys_message in _REFUSALS:
        status, code, detail = _REFUSALS[error.sys_message]
        return Problem(status=status, code=code, detail=detail)
    # ERROR_BAD_REQUEST for a value the SDK let through, a low balance, something new.
    return Problem(status=502, code="upstream_error", detail="kod.mobi refused the request")


def problem_response(problem: Problem, error: BaseException | None = None) -> JSONResponse:
    """The JSON answer for a problem; answers of 500 and above are logged."""
    if problem.status >= 500 and error is not None:
        # The SDK's messages name the status, kod.mobi's sys_message, the path and the
        # attempts; never a key, a code, a token, or a phone or address.
        logger.warning("login step failed: %s: %s", type(error).__name__, error)
    headers = {}
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    return JSONResponse(
        problem.model_dump(exclude_none=True), status_code=problem.status, headers=headers
    )


# -- this app's own sessions ----------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_session(key: bytes, user: str, now: float) -> tuple[str, int]:
    """A signed session token for ``user``, and when it expires (epoch seconds)."""
    expires = int(now) + SESSION_LIFETIME
    payload = _b64(json.dumps({"sub": user, "exp": expires}).encode())
    signature = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", expires


def read_session(key: bytes, token: str, now: float) -> str | None:
    """The user a session token was issued to, or None if forged, broken or expired."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    user, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(user, str) or not isinstance(expires, int | float) or expires <= now:
        return None
    return user


# -- the app --------------------------------------------------------------------------


async def get_kodmobi(request: Request) -> KodMobiClient:
    """The app's one client, for a handler (async: FastAPI runs a plain def in a thread)."""
    client: KodMobiClient = request.app.state.kodmobi
    return client


async def current_user(
    request: Request, login_session: Annotated[str | None, Cookie()] = None
) -> str:
    """The logged-in user, from the session cookie; 401 without a valid one."""
    if login_session is not None:
        user = read_session(request.app.state.session_key, login_session, time.time())
        if user is not None:
            return user
    raise LoginRefusedError(Problem(status=401, code="not_logged_in", detail="log in first"))


KodMobi = Annotated[KodMobiClient, Depends(get_kodmobi)]
User = Annotated[str, Depends(current_user)]


def create_app(*, session_key: bytes | None = None, **client_options: Any) -> FastAPI:
    """Build the app.

    Args:
        session_key: The key that signs this app's session cookies; defaults to
            ``LOGIN_SESSION_KEY``, else a random one (sessions then end at a restart).
        client_options: Passed to :class:`KodMobiClient`; without them it reads
            ``KODMOBI_API_KEY``, ``KODMOBI_SECRET_KEY`` and ``KODMOBI_BASE_URL``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = session_key or os.environ.get("LOGIN_SESSION_KEY", "").encode()
        if not key:
            logger.warning("LOGIN_SESSION_KEY is not set: sessions end when the app stops")
            key = secrets.token_bytes(32)
        app.state.session_key = key
        # Created here, inside the server's event loop, and closed at shutdown.
        async with KodMobiClient(**client_options) as client:
            app.state.kodmobi = client
            yield

    app = FastAPI(title="Log in with a one-time code", lifespan=lifespan)

    @app.exception_handler(KodMobiError)
    async def on_kodmobi_error(request: Request, error: KodMobiError) -> JSONResponse:
        return problem_response(problem_for(error), error)

    @app.exception_handler(LoginRefusedError)
    async def on_refusal(request: Request, error: LoginRefusedError) -> JSONResponse:
        return problem_response(error.problem)

    @app.get("/login/channels")
    async def login_channels(kodmobi: KodMobi) -> list[Channel]:
        return [Channel.from_sdk(c) for c in await kodmobi.get_session_channels()]

    @app.post("/login/start")
    async def start(body: StartRequest, kodmobi: KodMobi) -> Started:
        session = await kodmobi.create_session(
            body.to, type=body.channel, challenge_token=body.challenge_token
        )
        return Started(
            session_id=session.session_id,
            expires_at=session.session_expired_at,
            sent_to=None if session.sent_to is None else str(session.sent_to),
            channels=[Channel.from_sdk(c) for c in session.channels],
        )

    @app.post("/login/resend")
    async def resend(body: ResendRequest, kodmobi: KodMobi) -> Resent:
        sent = await kodmobi.send_code(
            body.session_id, body.channel, challenge_token=body.challenge_token
        )
        return Resent(
            session_id=sent.session_id,
            expires_at=sent.session_expired_at,
            channel=Channel.from_sdk(sent.channel),
        )

    @app.post("/login/check")
    async def check(body: CheckRequest, kodmobi: KodMobi) -> Checked:
        result = await kodmobi.check_code(
            body.session_id, body.code, challenge_token=body.challenge_token
        )
        return Checked(verify_token=result.verify_token)

    @app.post("/login/verify")
    async def verify(body: VerifyRequest, kodmobi: KodMobi, response: Response) -> LoggedIn:
        try:
            # The secret key goes from this server to kod.mobi, and nowhere else.
            proof = await kodmobi.verify(body.verify_token)
        except NotFoundError as error:
            detail = "this verify token is unknown or was already used; log in again"
            problem = Problem(status=401, code="verify_token_rejected", detail=detail)
            raise LoginRefusedError(problem) from error
        # Who logged in is what kod.mobi verified, never what the caller claims.
        token, expires = issue_session(app.state.session_key, proof.to, time.time())
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_LIFETIME,
            httponly=True,  # out of reach of the page's scripts
            secure=True,  # sent over https only
            samesite="lax",
        )
        return LoggedIn(user=proof.to, expires_at=datetime.fromtimestamp(expires, timezone.utc))

    @app.get("/me")
    async def me(user: User) -> dict[str, str]:
        return {"user": user}

    @app.post("/logout", status_code=204)
    async def logout(response: Response) -> None:
        response.delete_cookie(COOKIE, httponly=True, secure=True, samesite="lax")

    return app


# What `uvicorn fastapi_login:app` serves. A person waits on every step, so a call gets
# 5 s and 2 attempts rather than the defaults (10 s, 4 attempts). The client is only
# created when the server starts the app: importing needs no key.
app = create_app(timeout=5.0, retry=RetryPolicy(attempts=2, max_wait=0.5))


# -- a demonstration ------------------------------------------------------------------


async def main() -> None:
    """Log a user in through the app, against a fake kod.mobi unless configured."""
    # Only the demonstration needs these; the service itself does not.
    import httpx

    from kodmobi_async.testing import FakeKodMobi

    def show(response: httpx.Response) -> Any:
        request = response.request
        print(request.method, request.url.path, "->", response.status_code, response.text)
        return response.json() if response.content else None

    @asynccontextmanager
    async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="https://app") as http,
        ):
            yield http

    if os.environ.get("KODMOBI_BASE_URL"):
        async with serve(create_app()) as http:
            show(await http.get("/login/channels"))
            for to in sys.argv[1:]:
                show(await http.post("/login/start", json={"to": to}))
        return

    async with FakeKodMobi() as fake:
        options = {"api_key": fake.api_key, "secret_key": fake.secret_key, "base_url": fake.url}
        async with serve(create_app(session_key=b"demo only", **options)) as http:
            started = show(await http.post("/login/start", json={"to": "+15550100123"}))
            session_id = started["session_id"]
            # The user reads the code on their phone; here, the fake tells us.
            code = fake.code_for(session_id)
            wrong = "0000" if code != "0000" else "1111"
            show(await http.post("/login/check", json={"session_id": session_id, "code": wrong}))
            checked = show(
                await http.post("/login/check", json={"session_id": session_id, "code": code})
            )
            show(await http.post("/login/verify", json=checked))
            show(await http.get("/me"))
            show(await http.post("/login/verify", json=checked))  # a token verifies once


if __name__ == "__main__":
    asyncio.run(main())
