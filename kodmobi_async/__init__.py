"""kodmobi-async: the asyncio-first Python SDK for kod.mobi's one-time-code API.

Start with :class:`KodMobiClient`; test against :mod:`kodmobi_async.testing`.
"""

from __future__ import annotations

from typing import Any

from ._calls import Endpoints
from ._client import KodMobiClient
from ._clock import Clock, FakeClock, SystemClock
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientStateError,
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    InvalidSessionIdError,
    KodMobiError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ResponseValidationError,
    RetryBudgetExhaustedError,
    ServerError,
)
from ._models import (
    ChallengeSettings,
    ChannelType,
    CodeCheck,
    CodeFormat,
    ManualChannel,
    ManualMessage,
    ManualProvider,
    ProjectInfo,
    ProjectSettings,
    SentCode,
    Session,
    SessionChannel,
    Verification,
)
from ._outcomes import BatchResult, Outcome, ProgressCallback
from ._retry import RetryPolicy
from ._throttle import PaceState


def __getattr__(name: str) -> Any:
    # Read from the package metadata on first use: importlib.metadata costs more to
    # import than most of this package, and most programs never ask for the version.
    if name == "__version__":
        from importlib.metadata import version

        value = globals()["__version__"] = version("kodmobi-async")  # asked once
        return value
    msg = f"module 'kodmobi_async' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "ChallengeSettings",
    "ChannelType",
    "ClientStateError",
    "Clock",
    "CodeCheck",
    "CodeFormat",
    "ConfigurationError",
    "ConflictError",
    "Endpoints",
    "FakeClock",
    "InvalidArgumentError",
    "InvalidSessionIdError",
    "KodMobiClient",
    "KodMobiError",
    "ManualChannel",
    "ManualMessage",
    "ManualProvider",
    "NotFoundError",
    "Outcome",
    "PaceState",
    "PermissionDeniedError",
    "ProgressCallback",
    "ProjectInfo",
    "ProjectSettings",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "RetryBudgetExhaustedError",
    "RetryPolicy",
    "SentCode",
    "ServerError",
    "Session",
    "SessionChannel",
    "SystemClock",
    "Verification",
    "__version__",
]
