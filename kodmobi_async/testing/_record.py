"""What the fake remembers about traffic: the request log and the queues of faults.

Plain classes without a lock of their own: the server calls them under its lock.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

from ._faults import Fault


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the fake received.

    Args:
        method: The HTTP method.
        path: The path without the query string.
        query: The query parameters (the first value of a repeated one).
        headers: The request headers; lookups ignore case.
        session_id: The ``session_id`` the request is about, exactly as sent: the query
            parameter, or for a POST the JSON body's ``session_id`` string; else None.
        status: The status the fake answered with; None when it sent no response (the
            connection was dropped, or the answer is still pending).
        fault: The scripted fault applied to this request, or None.
        received_at: The fake's clock when the request arrived: ``time.monotonic()``
            unless the fake was given a ``clock``.
        body: The raw request body (``b""`` for a GET).
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(hash=False)
    headers: Mapping[str, str] = attrs.field(hash=False)
    session_id: str | None
    status: int | None
    fault: Fault | None
    received_at: float
    body: bytes = b""

    def json(self) -> Any:
        """Parse the request body as JSON.

        Returns:
            The document.

        Raises:
            ValueError: The body is not JSON (an empty one included).
        """
        return json.loads(self.body)


@attrs.define(kw_only=True)
class Entry:
    """The mutable log line behind a RecordedRequest: the status arrives later."""

    # The request object itself is not kept: it pins the connection's protocol and
    # buffers for as long as the log lives.
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    session_id: str | None
    received_at: float
    body: bytes = b""
    fault: Fault | None = None
    status: int | None = None

    def set_status(self, status: int | None) -> None:
        """Record the status sent (None: no response)."""
        self.status = status

    def snapshot(self) -> RecordedRequest:
        """Freeze the line as it stands."""
        return RecordedRequest(
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            session_id=self.session_id,
            status=self.status,
            fault=self.fault,
            received_at=self.received_at,
            body=self.body,
        )


@attrs.define
class _Scripted:
    fault: Fault
    remaining: int | None
    route: str | None


def checked_route(route: object) -> str | None:
    """Check the ``route`` a fault is scripted for.

    Args:
        route: A path such as ``"/session/create"``, or None for every path.

    Returns:
        The same value.

    Raises:
        ValueError: It does not start with ``/`` or carries a query string.
    """
    if route is None:
        return None
    if not isinstance(route, str) or not route.startswith("/") or "?" in route:
        msg = f"route must be a path such as '/session/create' (no query), got {route!r}"
        raise ValueError(msg)
    return route


class FaultQueue:
    """Scripted faults in FIFO order; each applies to every path or to one.

    A request takes the first fault whose route matches its path; that fault's count
    goes down, and it leaves the queue when the count reaches zero (never, for None).
    """

    def __init__(self) -> None:
        self._queue: deque[_Scripted] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, fault: Fault, times: int | None, route: str | None) -> None:
        """Queue a fault.

        Raises:
            ValueError: ``times`` is not a positive int or None, or ``route`` is invalid.
        """
        if times is not None and times < 1:
            msg = f"times must be a positive int or None (forever), got {times!r}"
            raise ValueError(msg)
        self._queue.append(_Scripted(fault, times, checked_route(route)))

    def take(self, path: str) -> Fault | None:
        """Use up one application of the first fault for ``path``, if any."""
        for index, scripted in enumerate(self._queue):
            if scripted.route is None or scripted.route == path:
                if scripted.remaining is not None:
                    scripted.remaining -= 1
                    if scripted.remaining == 0:
                        del self._queue[index]
                return scripted.fault
        return None
