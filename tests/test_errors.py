"""The exception tree: what a handler can catch, and what each error carries."""

from __future__ import annotations

import builtins
import re
from typing import Any

import pytest

import kodmobi_async
from kodmobi_async import (
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
    _errors,
)
from kodmobi_async._errors import status_error_class

# The tree as the module docstring draws it: class -> its parent in the drawing.
DRAWN_PARENTS: dict[type[Exception], type[Exception]] = {
    ConfigurationError: KodMobiError,
    InvalidArgumentError: KodMobiError,
    InvalidSessionIdError: InvalidArgumentError,
    ClientStateError: KodMobiError,
    APIError: KodMobiError,
    APIConnectionError: APIError,
    APITimeoutError: APIConnectionError,
    APIStatusError: APIError,
    RedirectError: APIStatusError,
    BadRequestError: APIStatusError,
    AuthenticationError: APIStatusError,
    PermissionDeniedError: APIStatusError,
    NotFoundError: APIStatusError,
    ConflictError: APIStatusError,
    RateLimitError: APIStatusError,
    ServerError: APIStatusError,
    ResponseValidationError: APIError,
    RetryBudgetExhaustedError: APIError,
}

_TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*?)(?P<name>[A-Z]\w+)(?:\s+\(also (?P<also>\w+)\))?")


def drawn_tree() -> list[tuple[int, str, str | None]]:
    """(depth, class name, builtin it also derives from) for each line of the drawing."""
    doc = _errors.__doc__ or ""
    drawing = doc.split("::", 1)[1].split("\n\n")[1]
    rows = []
    for line in drawing.splitlines():
        match = _TREE_LINE.match(line)
        assert match is not None, line
        depth = (len(match["indent"]) - 4) // 4
        rows.append((depth, match["name"], match["also"]))
    return rows


class TestTree:
    @pytest.mark.parametrize(("child", "parent"), list(DRAWN_PARENTS.items()))
    def test_each_error_derives_from_its_parent_in_the_drawing(
        self, child: type[Exception], parent: type[Exception]
    ) -> None:
        assert issubclass(child, parent)
        assert child.__mro__[1] is parent

    @pytest.mark.parametrize("error_class", list(DRAWN_PARENTS))
    def test_every_error_is_a_kodmobi_error(self, error_class: type[Exception]) -> None:
        assert issubclass(error_class, KodMobiError)

    @pytest.mark.parametrize(
        ("error_class", "builtin"),
        [
            (ConfigurationError, ValueError),
            (InvalidSessionIdError, ValueError),
            (InvalidArgumentError, ValueError),
            (ClientStateError, RuntimeError),
        ],
    )
    def test_misuse_errors_are_also_the_builtin_a_caller_expects(
        self, error_class: type[Exception], builtin: type[Exception]
    ) -> None:
        assert issubclass(error_class, builtin)

    @pytest.mark.parametrize(
        "error_class", [APIError, APIStatusError, ResponseValidationError, ServerError]
    )
    def test_api_errors_are_not_value_errors(self, error_class: type[Exception]) -> None:
        # `except ValueError` around user input parsing must not swallow service failures.
        assert not issubclass(error_class, ValueError | RuntimeError)

    def test_the_drawing_matches_the_code(self) -> None:
        parents: list[str] = []
        seen = set()
        for depth, name, also in drawn_tree():
            del parents[depth:]
            cls = getattr(_errors, name)
            if parents:
                assert cls.__mro__[1] is getattr(_errors, parents[-1]), name
            if also is not None:
                assert issubclass(cls, getattr(builtins, also)), name
            parents.append(name)
            seen.add(name)
        assert seen == set(_errors.__all__)

    def test_every_error_is_exported_from_the_package(self) -> None:
        for name in _errors.__all__:
            assert getattr(kodmobi_async, name) is getattr(_errors, name)
            assert name in kodmobi_async.__all__


class TestStatusErrorClass:
    @pytest.mark.parametrize(
        ("status", "error_class"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (429, RateLimitError),
            (500, ServerError),
            (501, ServerError),
            (502, ServerError),
            (503, ServerError),
            (504, ServerError),
            (599, ServerError),
            (300, RedirectError),
            (301, RedirectError),
            (302, RedirectError),
            (307, RedirectError),
            (308, RedirectError),
            (399, RedirectError),
            (402, APIStatusError),
            (405, APIStatusError),
            (408, APIStatusError),
            (418, APIStatusError),
            (422, APIStatusError),
            (451, APIStatusError),
        ],
    )
    def test_each_status_maps_to_the_most_specific_class(
        self, status: int, error_class: type[APIStatusError]
    ) -> None:
        assert status_error_class(status) is error_class


class TestAPIError:
    def test_a_first_try_error_prints_its_message_alone(self) -> None:
        error = APIError("kod.mobi answered 503", method="GET", path="/session/channels")

        assert error.attempts == 1
        assert str(error) == "kod.mobi answered 503"
        assert (error.method, error.path, error.message) == (
            "GET",
            "/session/channels",
            "kod.mobi answered 503",
        )
        assert error.partial_result is None

    @pytest.mark.parametrize("attempts", [2, 4, 10])
    def test_an_error_after_retries_says_how_many_attempts(self, attempts: int) -> None:
        error = ServerError("kod.mobi answered 503", status=503)
        error.attempts = attempts

        assert str(error) == f"kod.mobi answered 503 (after {attempts} attempts)"
        assert error.message == "kod.mobi answered 503"

    def test_defaults_name_a_get_with_no_path(self) -> None:
        error = APIConnectionError("connection refused")

        assert (error.method, error.path) == ("GET", "")


class TestAPIStatusError:
    @pytest.mark.parametrize(
        ("error_class", "status", "extra"),
        [(RateLimitError, 429, {}), (RedirectError, 308, {"location": None})],
        ids=["rate-limit", "redirect"],
    )
    def test_it_carries_every_envelope_field(
        self, error_class: type[APIStatusError], status: int, extra: dict[str, Any]
    ) -> None:
        error = error_class(
            "slow down",
            status=status,
            error="Too many attempts",
            sys_message="ERROR_MESSAGE_ATTEMPT",
            error_params={"count": 3},
            retry_after=2.5,
            method="HEAD",
            path="/session/channels",
            **extra,
        )

        assert error.status == status
        assert error.error == "Too many attempts"
        assert error.sys_message == "ERROR_MESSAGE_ATTEMPT"
        assert error.error_params == {"count": 3}
        assert error.retry_after == 2.5
        assert (error.method, error.path) == ("HEAD", "/session/channels")
        assert str(error) == "slow down"

    def test_missing_fields_default_to_none_and_empty_params(self) -> None:
        error = ServerError("bad gateway", status=502)

        assert (error.error, error.sys_message, error.retry_after) == (None, None, None)
        assert error.error_params == {}

    def test_error_params_are_a_copy_of_what_was_given(self) -> None:
        params = {"count": 1}
        error = BadRequestError("bad", status=400, error_params=params)
        params["count"] = 99

        assert error.error_params == {"count": 1}

    def test_a_redirect_carries_its_location(self) -> None:
        error = RedirectError("moved", status=301, location="https://elsewhere.example")

        assert error.location == "https://elsewhere.example"
        assert error.status == 301


class TestOtherErrors:
    def test_response_validation_error_carries_status_and_field_path(self) -> None:
        error = ResponseValidationError("bad body", status=200, field_path="$[0].timeout")

        assert (error.status, error.field_path) == (200, "$[0].timeout")

    def test_invalid_session_id_error_carries_the_value(self) -> None:
        error = InvalidSessionIdError("not a ULID", session_id=42)

        assert error.session_id == 42
        assert str(error) == "not a ULID"

    def test_retry_budget_exhausted_carries_the_last_error_and_its_request(self) -> None:
        last = ServerError("kod.mobi answered 503", status=503, method="GET", path="/x")

        error = RetryBudgetExhaustedError("budget exhausted", last_error=last)

        assert error.last_error is last
        assert (error.method, error.path) == ("GET", "/x")
        assert str(error) == "budget exhausted"
        assert isinstance(error, APIError)
        assert not isinstance(error, APIStatusError)
