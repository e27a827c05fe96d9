"""kodmobi-async: the asyncio-first Python SDK for kod.mobi's one-time-code API.

Start with :class:`KodMobiClient`; test against :mod:`kodmobi_async.testing`.
"""

from __future__ import annotations

from importlib.metadata import version as _version

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
from ._models import ChannelType, SessionChannel
from ._outcomes import BatchResult, Outcome, ProgressCallback
from ._retry import RetryPolicy
from ._throttle import PaceState

__version__ = _version("kodmobi-async")

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "ChannelType",
    "ClientStateError",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "FakeClock",
    "InvalidSessionIdError",
    "KodMobiClient",
    "KodMobiError",
    "NotFoundError",
    "Outcome",
    "PaceState",
    "PermissionDeniedError",
    "ProgressCallback",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "RetryBudgetExhaustedError",
    "RetryPolicy",
    "ServerError",
    "SessionChannel",
    "SystemClock",
    "__version__",
]
