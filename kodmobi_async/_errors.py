"""Everything the SDK raises.

The tree, so that a handler can catch as broadly or as narrowly as it needs::

    KodMobiError
    ├── ConfigurationError            (also ValueError)  bad constructor argument or env
    ├── InvalidArgumentError          (also ValueError)  a bad argument; raised before any request
    │   └── InvalidSessionIdError                        not a ULID
    ├── ClientStateError              (also RuntimeError) closed client, wrong event loop
    └── APIError                      something went wrong talking to kod.mobi
        ├── APIConnectionError        could not connect, connection reset, ...
        │   └── APITimeoutError       the call's deadline passed
        ├── APIStatusError            kod.mobi (or a proxy) answered with an error status
        │   ├── RedirectError         3xx; never followed, the key must not travel
        │   ├── BadRequestError       400
        │   ├── AuthenticationError   401
        │   ├── PermissionDeniedError 403
        │   ├── NotFoundError         404
        │   ├── ConflictError         409
        │   ├── RateLimitError        429, with ``retry_after``
        │   └── ServerError           5xx
        ├── ResponseValidationError   a 2xx body that is not what the API promises
        └── RetryBudgetExhaustedError the client's shared retry budget ran dry

No message built here ever contains the API key: the key never reaches this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._outcomes import BatchResult

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientStateError",
    "ConfigurationError",
    "ConflictError",
    "InvalidArgumentError",
    "InvalidSessionIdError",
    "KodMobiError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "RetryBudgetExhaustedError",
    "ServerError",
]


class KodMobiError(Exception):
    """Base class of every error this SDK raises.

    Attributes:
        partial_result: When this error stopped a batch (an authentication or
            permission failure, or the client closed under it), the
            :class:`~kodmobi_async.BatchResult` of the lookups that finished, with the
            ids that were not looked up in ``not_looked_up``; ``None`` otherwise.
    """

    partial_result: BatchResult | None = None


class ConfigurationError(KodMobiError, ValueError):
    """The client was configured in a way that cannot work (missing key, unsafe URL)."""


class InvalidArgumentError(KodMobiError, ValueError):
    """An argument of a call cannot be sent to kod.mobi; raised before any request.

    A ``to`` that is neither an E.164 phone nor an email address, a code that is not 4
    to 6 digits, a non-http(s) ``callback_url``: the message says what was wrong.

    Attributes:
        argument: The name of the offending argument.
    """

    argument: str

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidSessionIdError(InvalidArgumentError):
    """A session id is not a ULID; raised before any request is sent.

    Attributes:
        session_id: The offending value, as given.
    """

    session_id: object

    def __init__(self, message: str, *, session_id: object) -> None:
        super().__init__(message, argument="session_id")
        self.session_id = session_id


class ClientStateError(KodMobiError, RuntimeError):
    """The client cannot be used now: it is closed, or bound to another event loop."""


class APIError(KodMobiError):
    """A call to kod.mobi failed.

    Attributes:
        method: HTTP method of the failed call.
        path: Request path of the failed call (no query string, so no session id).
        attempts: How many attempts were made before giving up (set once the retry
            loop is done; ``1`` for an error raised on the first try without retry).
    """

    message: str
    method: str
    path: str
    attempts: int

    def __init__(self, message: str, *, method: str = "GET", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.attempts = 1

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (after {self.attempts} attempts)"
        return self.message


class APIConnectionError(APIError):
    """The request did not get an HTTP answer: refused, reset, dropped or unreachable.

    Attributes:
        may_have_reached_server: ``False`` only when the request provably never left
            (connection refused, DNS failure, connect timeout); then even a call that
            delivers a message is safe to retry.
    """

    may_have_reached_server: bool = True


class APITimeoutError(APIConnectionError):
    """The call's deadline passed before kod.mobi answered."""


class APIStatusError(APIError):
    """kod.mobi answered with a non-success status.

    The fields come from kod.mobi's error envelope when the body is one; when the body
    is something else (a proxy's HTML page, say), ``error`` holds a short excerpt and
    ``sys_message`` is ``None``.

    Attributes:
        status: The HTTP status code.
        error: Human-readable message from the service (localized by ``language``).
        sys_message: Stable machine code such as ``"ERROR_MESSAGE_NOT_FOUND"``.
        error_params: Extra details from the envelope (e.g. ``{"count": 2}``).
        retry_after: Seconds the service asked us to wait, if it said.
    """

    status: int
    error: str | None
    sys_message: str | None
    error_params: Mapping[str, Any]
    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error: str | None = None,
        sys_message: str | None = None,
        error_params: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        method: str = "GET",
        path: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.error = error
        self.sys_message = sys_message
        self.error_params = dict(error_params or {})
        self.retry_after = retry_after


class RedirectError(APIStatusError):
    """kod.mobi (or something in front of it) answered with a redirect.

    Redirects are never followed, so the ``x-api-key`` header cannot be carried to
    another host. Check ``base_url``.

    Attributes:
        location: Where the redirect pointed, or ``None`` if it did not say.
    """

    location: str | None

    def __init__(self, message: str, *, location: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class BadRequestError(APIStatusError):
    """400: the service rejected the request as invalid."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this resource (e.g. a public key on a secret
    endpoint)."""


class NotFoundError(APIStatusError):
    """404: the session (or other resource) does not exist, or no longer does."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's state."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` says how long to wait when known."""


class ServerError(APIStatusError):
    """5xx: kod.mobi or a proxy in front of it failed; usually worth retrying later."""


class ResponseValidationError(APIError):
    """A success response whose body is not what the API promises.

    Attributes:
        status: The HTTP status of the response.
        field_path: Where in the body the problem is (``"$[2].timeout"``), when known.
    """

    status: int
    field_path: str | None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        field_path: str | None = None,
        method: str = "GET",
        path: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.field_path = field_path


class RetryBudgetExhaustedError(APIError):
    """A retry was due, but the client's shared retry budget is empty.

    The budget keeps an outage from multiplying load by the retry count. The last
    real error is the ``__cause__`` of this one.

    Attributes:
        last_error: The error that would have been retried.
    """

    last_error: APIError

    def __init__(self, message: str, *, last_error: APIError) -> None:
        super().__init__(message, method=last_error.method, path=last_error.path)
        self.last_error = last_error


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific :class:`APIStatusError` subclass for an HTTP status."""
    if 300 <= status < 400:
        return RedirectError
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIStatusError)
