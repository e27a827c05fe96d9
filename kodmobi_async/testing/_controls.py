"""The fake's controls for tests: channels, sessions, codes, keys and settings.

A mixin of :class:`~kodmobi_async.testing.FakeKodMobi`, kept apart from the socket
side; every method takes the fake's lock, so tests may call them from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kodmobi_async._clock import Clock

from ._state import (
    ChannelList,
    Delivery,
    Project,
    checked_manual_channels,
    checked_session_id,
    is_code,
    is_recipient,
    new_session_id,
)


class ProjectControls:
    """Script and inspect the fake project (see :class:`FakeKodMobi`)."""

    _lock: threading.Lock
    _project: Project
    _clock: Clock

    # -- channels and registered sessions --------------------------------------------

    @property
    def project_channels(self) -> list[dict[str, Any]]:
        """The project channel list served without ``session_id``; settable.

        Each channel is a mapping with ``type`` required; missing ``name``,
        ``is_active`` (True), ``timeout`` (0), ``image_url`` and ``link`` are filled in,
        and extra fields such as ``description`` are served as given. Any ``type``
        string is allowed. Setting it does not change existing sessions. The flow
        routes pick their channels from it: ``email`` reaches an email address, every
        other type a phone.
        """
        with self._lock:
            channels = self._project.channels
        return [dict(channel) for channel in channels.channels]

    @project_channels.setter
    def project_channels(self, channels: Iterable[Mapping[str, Any]]) -> None:
        checked = ChannelList.of(channels)
        with self._lock:
            self._project.channels = checked

    def add_session(
        self,
        session_id: str | None = None,
        *,
        channels: Iterable[Mapping[str, Any]] | None = None,
    ) -> str:
        """Register a session the fake will answer for.

        Args:
            session_id: A ULID in upper case; a fresh one when None.
            channels: The session's channel list, in the form described for
                :attr:`project_channels`; a copy of the project channels when None.

        Returns:
            The session id.

        Raises:
            ValueError: The id is not a ULID, is already registered, or a channel is
                invalid.
        """
        sid = new_session_id() if session_id is None else checked_session_id(session_id)
        self._register([sid], channels)
        return sid

    def add_sessions(
        self,
        count: int,
        *,
        channels: Iterable[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Register many sessions with fresh ids at once; they share one channel list.

        Args:
            count: How many sessions to create.
            channels: Their channel list, as for :meth:`add_session`.

        Returns:
            The new session ids, in creation order.

        Raises:
            ValueError: ``count`` is negative or a channel is invalid.
        """
        if count < 0:
            msg = f"count must be >= 0, got {count}"
            raise ValueError(msg)
        ids = [new_session_id() for _ in range(count)]
        self._register(ids, channels)
        return ids

    def _register(self, ids: list[str], channels: Iterable[Mapping[str, Any]] | None) -> None:
        template = None if channels is None else ChannelList.of(channels)
        with self._lock:
            session = self._project.channels if template is None else template
            registered = self._project.registered
            for sid in ids:
                if sid in registered or sid in self._project.flow.sessions:
                    msg = f"session {sid} already exists; use set_channels()"
                    raise ValueError(msg)
            for sid in ids:
                registered[sid] = session

    def set_channels(self, session_id: str, channels: Iterable[Mapping[str, Any]]) -> None:
        """Replace a session's channel list.

        Args:
            session_id: A registered session id (upper case).
            channels: The new list, in the form described for :attr:`project_channels`.

        Raises:
            KeyError: The session is not registered.
            ValueError: The id is not a ULID or a channel is invalid.
        """
        sid = checked_session_id(session_id)
        session = ChannelList.of(channels)
        with self._lock:
            self._require_session(sid)
            self._project.registered[sid] = session

    def set_channel_state(
        self,
        session_id: str,
        channel_type: str,
        *,
        is_active: bool | None = None,
        timeout: int | None = None,
    ) -> None:
        """Change the per-session state of the channel(s) of one type.

        Args:
            session_id: A registered session id (upper case).
            channel_type: The ``type`` of the channel(s) to change.
            is_active: The new ``is_active``; unchanged when None.
            timeout: The new ``timeout`` (0 to 60); unchanged when None.

        Raises:
            KeyError: The session is not registered or has no channel of that type.
            ValueError: The id is not a ULID or ``timeout`` is out of range.
        """
        sid = checked_session_id(session_id)
        changes: dict[str, Any] = {}
        if is_active is not None:
            changes["is_active"] = is_active
        if timeout is not None:
            changes["timeout"] = timeout
        with self._lock:
            channels = self._require_session(sid).channels
            if not any(channel["type"] == channel_type for channel in channels):
                msg = f"session {sid} has no {channel_type!r} channel"
                raise KeyError(msg)
            updated = tuple(
                {**channel, **changes} if channel["type"] == channel_type else channel
                for channel in channels
            )
            self._project.registered[sid] = ChannelList.of(updated)

    def channels(self, session_id: str) -> list[dict[str, Any]]:
        """Return a session's current channel list.

        Args:
            session_id: A registered session id, or one ``/session/create`` made (its
                channels carry their cool-downs as ``timeout``, as served now).

        Returns:
            Copies of the channel dicts, as served.

        Raises:
            KeyError: The session is unknown.
            ValueError: The id is not a ULID.
        """
        sid = checked_session_id(session_id)
        with self._lock:
            flow = self._project.flow
            session = flow.sessions.get(sid)
            if session is not None:
                return flow.channels_of(session, self._clock.monotonic())
            channels = self._require_session(sid).channels
        return [dict(channel) for channel in channels]

    def remove_session(self, session_id: str) -> None:
        """Forget a session, as when it expires; later requests for it get 404.

        Args:
            session_id: A registered session id, or one ``/session/create`` made.

        Raises:
            KeyError: The session is unknown.
            ValueError: The id is not a ULID.
        """
        sid = checked_session_id(session_id)
        with self._lock:
            if self._project.flow.sessions.pop(sid, None) is not None:
                return
            self._require_session(sid)
            del self._project.registered[sid]

    def _require_session(self, sid: str) -> ChannelList:
        try:
            return self._project.registered[sid]
        except KeyError:
            msg = f"no session {sid}; add it with add_session()"
            raise KeyError(msg) from None

    # -- the flow --------------------------------------------------------------------

    def code_for(self, session_id: str) -> str:
        """Return the code a session's last send delivered (what the user would type).

        Args:
            session_id: An id ``/session/create`` returned.

        Returns:
            The current code; a test recipient's fixed code from the start.

        Raises:
            KeyError: The fake made no such session (sessions from :meth:`add_session`
                have no code).
            ValueError: The id is not a ULID, or no code was sent yet (``send=false``).
        """
        sid = checked_session_id(session_id)
        with self._lock:
            session = self._project.flow.sessions.get(sid)
            if session is None:
                msg = f"no session {sid} was created through /session/create"
                raise KeyError(msg)
            code = session.code
        if code is None:
            msg = f"session {sid} has no code yet: it was created with send=false"
            raise ValueError(msg)
        return code

    @property
    def deliveries(self) -> list[Delivery]:
        """Every message the fake "sent", oldest first, since :meth:`clear_deliveries`.

        Sends to test recipients are not deliveries; ``/manual/send`` ones are.
        """
        with self._lock:
            return list(self._project.flow.deliveries)

    def clear_deliveries(self) -> None:
        """Forget the recorded deliveries."""
        with self._lock:
            self._project.flow.deliveries.clear()

    def add_test_recipient(self, to: str, code: str = "0000") -> None:
        """Make ``to`` a test recipient: its sessions are ``is_test``, nothing is sent.

        Its sessions' code is ``code`` from creation on; sends still start cool-downs
        but record no delivery; ``/v2/check`` answers ``is_test: true``. Sessions
        already created keep what they were.

        Args:
            to: An E.164 phone or an email address.
            code: The fixed code, 4 to 6 digits.

        Raises:
            ValueError: ``to`` or ``code`` is invalid.
        """
        if not is_recipient(to):
            msg = f"to must be an E.164 phone or an email address, got {to!r}"
            raise ValueError(msg)
        if not is_code(code):
            msg = f"code must be 4 to 6 digits, got {code!r}"
            raise ValueError(msg)
        with self._lock:
            self._project.flow.test_recipients[to] = code

    def set_settings(
        self,
        *,
        language: str | None = None,
        project_name: str | None = None,
        code_length: int | None = None,
    ) -> None:
        """Change what ``GET /v2/settings`` reports; None leaves a setting as it is.

        Args:
            language: The project language (``"en"`` to start with).
            project_name: The project name (``"Fake project"`` to start with).
            code_length: The length of the codes the fake makes, 4 to 6 (4 to start
                with); codes are digits only.

        Raises:
            ValueError: ``code_length`` is not 4 to 6.
        """
        if code_length is not None and (type(code_length) is not int or not 4 <= code_length <= 6):
            msg = f"code_length must be an int from 4 to 6, got {code_length!r}"
            raise ValueError(msg)
        with self._lock:
            settings = self._project.flow.settings
            if language is not None:
                settings.language = language
            if project_name is not None:
                settings.project_name = project_name
            if code_length is not None:
                settings.code_length = code_length

    def enable_challenge(
        self,
        token: str = "fake-challenge-token",  # noqa: S107 -- a test fixture, not a secret
        *,
        header: str = "X-CF-TURNSTILE-TOKEN",
        site_key: str = "fake-turnstile-site-key",
    ) -> None:
        """Require a solved CAPTCHA token on create, send and check.

        Those routes then answer 400 ``ERROR_CHALLENGE`` unless the request carries
        ``token`` in ``header``; ``GET /v2/settings`` reports
        ``{"enabled": true, "api_key": site_key}``.

        Args:
            token: The token that passes.
            header: The header that carries it (case-insensitive); the real name is
                not documented, the legacy client used ``X-CF-TURNSTILE-TOKEN``.
            site_key: The CAPTCHA site key the settings report.

        Raises:
            ValueError: ``token`` or ``header`` is empty.
        """
        if not token or not header:
            msg = "the challenge token and header must be non-empty strings"
            raise ValueError(msg)
        with self._lock:
            settings = self._project.flow.settings
            settings.challenge_token = token
            settings.challenge_header = header
            settings.challenge_site_key = site_key

    def disable_challenge(self) -> None:
        """Stop requiring a CAPTCHA token (the initial state)."""
        with self._lock:
            self._project.flow.settings.challenge_token = None

    @property
    def manual_channels(self) -> list[dict[str, Any]]:
        """The channels ``GET /manual/channels`` lists, with their providers; settable.

        Each is ``{"name": str, "type": str, "providers": [{"id": int, "name": str,
        "type": str, "is_system": bool}]}``; provider ids are unique. It starts with SMS
        (providers 1 and 2) and Email (provider 3).
        """
        with self._lock:
            channels = self._project.flow.manual_channels
        return list(checked_manual_channels(channels))  # copies the dicts

    @manual_channels.setter
    def manual_channels(self, channels: Iterable[Mapping[str, Any]]) -> None:
        checked = checked_manual_channels(channels)
        with self._lock:
            self._project.flow.manual_channels = checked
