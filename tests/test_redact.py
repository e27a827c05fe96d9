"""The Redactor: no key, plain or percent-encoded, survives in any text the SDK builds."""

from __future__ import annotations

import builtins
import importlib
import json
import traceback
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import pytest

from kodmobi_async import APIConnectionError, ResponseValidationError
from kodmobi_async._redact import MASK, NO_SECRETS, RedactedCause, Redactor

# Characters that percent-encoding changes, so the encoded form differs from the key.
KEY = "sk+LEAK/redact=42"
ENCODED = quote(KEY, safe="")
SECRET = "sk-SECRET-redact-9f"


def redactor() -> Redactor:
    """A fresh one per test (a module-level one would be built before mutmut's switch)."""
    return Redactor([KEY, SECRET])


def exception_group(message: str, members: Sequence[BaseException]) -> BaseException:
    """A real ``ExceptionGroup``: the builtin from 3.11, pytest's backport on 3.10."""
    group_type: Any = getattr(builtins, "ExceptionGroup", None)
    if group_type is None:  # Python 3.10
        group_type = importlib.import_module("exceptiongroup").ExceptionGroup
    made: BaseException = group_type(message, members)
    return made


def links(error: BaseException) -> Iterator[BaseException]:
    """Every exception a traceback of ``error`` can print, ``error`` included."""
    stack, seen = [error], set()
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        stack.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
        stack.extend(getattr(exc, "exceptions", ()))


def assert_no_key(error: BaseException) -> str:
    """Check the printed traceback and every link's text, args and attributes."""
    printed = "".join(traceback.format_exception(error))
    texts = [printed]
    for exc in links(error):
        texts += [str(exc), repr(exc), *map(repr, exc.args), *map(repr, vars(exc).values())]
    for secret in (KEY, ENCODED, SECRET):
        assert not any(secret in text for text in texts), secret
    return printed


class Shown:
    """A value whose str and repr differ, as many library objects' do."""

    def __init__(self, text: str, representation: str) -> None:
        self.text, self.representation = text, representation

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.representation


def with_note(exc: BaseException, note: str) -> BaseException:
    """``exc`` with a note, as ``add_note()`` (3.11+) leaves it."""
    noted: Any = exc
    noted.__notes__ = [note]
    return exc


class UnprintableError(Exception):
    """An exception whose str() itself fails."""

    def __str__(self) -> str:
        raise RuntimeError("no")


def failure(cause: BaseException) -> APIConnectionError:
    error = APIConnectionError("could not get an answer from kod.mobi")
    error.__cause__ = cause
    return error


class TestText:
    def test_every_key_is_masked_and_the_rest_is_kept(self) -> None:
        text = f"Authorization: Bearer {KEY}, X-Secret: {SECRET}; again {KEY}."
        assert redactor().text(text) == "Authorization: Bearer ***, X-Secret: ***; again ***."

    def test_the_percent_encoded_key_is_masked_too(self) -> None:
        assert ENCODED != KEY
        assert redactor().text(f"GET /x?key={ENCODED}&a=1") == "GET /x?key=***&a=1"

    def test_a_key_that_contains_another_is_masked_whole(self) -> None:
        for secrets in (["abc", "abcdef"], ["abcdef", "abc"], ["xyz", "bxyzc"]):
            shorter, longer = sorted(secrets, key=len)
            text = f"<{longer}> <{shorter}>"
            assert Redactor(secrets).text(text) == "<***> <***>"

    def test_a_non_ascii_key_is_masked_in_text_and_in_bytes(self) -> None:
        odd = "sk-ключ-1"
        text = f"key={odd}; url=/x?key={quote(odd, safe='')}"
        assert Redactor([odd]).text(text) == "key=***; url=/x?key=***"
        assert Redactor([odd]).body(text.encode()) == b"key=***; url=/x?key=***"

    def test_text_without_a_key_comes_back_unchanged(self) -> None:
        assert (
            redactor().text("sk+LEAK/redact=4 is not the key") == "sk+LEAK/redact=4 is not the key"
        )

    def test_empty_keys_are_ignored(self) -> None:
        redactor = Redactor(["", ""])
        assert redactor.text("nothing to hide") == "nothing to hide"
        assert repr(redactor) == "<Redactor of 0 forms>"

    def test_shows_says_whether_a_key_is_in_the_text(self) -> None:
        assert redactor().shows(f"...{ENCODED}...")
        assert redactor().shows(f"...{SECRET}")
        assert not redactor().shows("sk-SECRET-redact-9")

    def test_the_repr_counts_forms_and_shows_none(self) -> None:
        # Each key and its encoded form; a key that encoding leaves alone counts once.
        assert repr(redactor()) == "<Redactor of 3 forms>"
        assert KEY not in repr(redactor())
        assert SECRET not in repr(redactor())


class TestBody:
    def test_keys_in_bytes_are_masked_and_the_rest_is_kept(self) -> None:
        body = f'{{"error": "bad key {KEY}", "url": "/x?key={ENCODED}", "k": "{SECRET}"}}'
        masked = redactor().body(body.encode())
        assert masked == b'{"error": "bad key ***", "url": "/x?key=***", "k": "***"}'

    def test_a_body_without_a_key_comes_back_unchanged(self) -> None:
        assert redactor().body(b"\xff\x00 sk+LEAK") == b"\xff\x00 sk+LEAK"


class TestData:
    def test_strings_are_masked_in_keys_and_values_at_any_level(self) -> None:
        value = {
            "error_params": {"key": KEY, KEY: [1, 2.5, None, True]},
            "list": [{"url": f"/x?key={ENCODED}"}, ("plain", SECRET)],
            "count": 3,
        }
        original = json.dumps(value)

        assert redactor().data(value) == {
            "error_params": {"key": MASK, MASK: [1, 2.5, None, True]},
            "list": [{"url": "/x?key=***"}, ["plain", MASK]],
            "count": 3,
        }
        assert json.dumps(value) == original  # a copy: the caller's value is untouched

    def test_nesting_past_the_limit_is_cut_off(self) -> None:
        nested: Any = ["deep", KEY, {"k": 1}]
        for _ in range(40):
            nested = [nested]

        shown = json.dumps(redactor().data(nested))

        assert KEY not in shown
        assert shown.startswith("[" * 32 + '"***"')
        assert shown.endswith('"***"' + "]" * 32)

    def test_nested_objects_are_cut_off_at_the_same_depth(self) -> None:
        nested: Any = {"k": KEY}
        for _ in range(40):
            nested = {"a": nested}

        shown = json.dumps(redactor().data(nested), separators=(",", ":"))

        assert KEY not in shown
        assert shown == '{"a":' * 32 + '"***"' + "}" * 32

    def test_scalars_pass_through(self) -> None:
        assert [redactor().data(v) for v in (1, 2.5, None, False)] == [1, 2.5, None, False]


class TestExposes:
    @pytest.mark.parametrize("shown", [KEY, ENCODED, SECRET])
    def test_a_key_in_the_message_is_seen(self, shown: str) -> None:
        assert redactor().exposes(OSError(f"header: {shown}"))

    def test_a_key_in_a_non_text_argument_is_seen(self) -> None:
        assert redactor().exposes(ValueError(1, {"headers": {"Authorization": KEY}}))

    def test_a_key_in_an_attribute_is_seen(self) -> None:
        # json keeps the whole document on the error, which str() does not print.
        with pytest.raises(json.JSONDecodeError) as info:
            json.loads(f'{{"key": "{KEY}", oops}}')
        assert KEY not in str(info.value)
        assert redactor().exposes(info.value)

    def test_a_key_in_a_note_is_seen(self) -> None:
        noted = with_note(OSError("reset"), f"while sending {KEY}")
        assert redactor().exposes(noted)

    def test_a_key_in_a_group_member_or_its_attributes_is_seen(self) -> None:
        assert redactor().exposes(exception_group("two", [OSError("a"), OSError(SECRET)]))
        noted = with_note(OSError("reset"), f"while sending {KEY}")
        assert redactor().exposes(exception_group("one", [exception_group("inner", [noted])]))

    def test_a_key_that_only_the_str_of_an_argument_shows_is_seen(self) -> None:
        # A traceback prints str(exc), which here is str() of the argument.
        assert redactor().exposes(ValueError(Shown(f"https://x.example/?key={KEY}", "<url>")))

    def test_a_key_that_only_the_repr_of_an_argument_shows_is_seen(self) -> None:
        # Logged with %r, or printed by a debugger.
        assert redactor().exposes(ValueError(Shown("<request>", f"Request(key={SECRET!r})")))

    def test_an_exception_that_cannot_be_printed_counts_as_exposing(self) -> None:
        assert redactor().exposes(UnprintableError())

    def test_a_clean_exception_is_not_flagged(self) -> None:
        clean = OSError(104, "Connection reset by peer")
        clean.filename = "run/kodmobi.sock"
        assert not redactor().exposes(clean)
        assert not redactor().exposes(exception_group("g", [clean, ValueError("x")]))

    def test_without_keys_nothing_exposes(self) -> None:
        assert not NO_SECRETS.exposes(OSError(KEY))


class TestSeal:
    def test_a_cause_showing_a_key_is_replaced_keeping_its_type_and_masked_text(self) -> None:
        error = failure(OSError(f"header Authorization: {KEY}"))

        redactor().seal(error)

        stand_in = error.__cause__
        assert isinstance(stand_in, RedactedCause)
        assert str(stand_in) == "OSError: header Authorization: ***"
        assert stand_in.__suppress_context__
        assert str(error) == "could not get an answer from kod.mobi"
        assert "OSError: header Authorization: ***" in assert_no_key(error)

    def test_a_context_showing_a_key_is_replaced(self) -> None:
        error = APIConnectionError("dropped")
        error.__context__ = ConnectionResetError(f"while sending key={ENCODED}")

        redactor().seal(error)

        assert isinstance(error.__context__, RedactedCause)
        assert str(error.__context__) == "ConnectionResetError: while sending key=***"
        assert_no_key(error)

    def test_a_link_deep_in_the_chain_is_replaced_and_the_clean_ones_kept(self) -> None:
        deep = OSError(SECRET)
        middle = ValueError("middle")
        middle.__cause__ = deep
        middle.__context__ = deep
        top = RuntimeError("top")
        top.__context__ = middle
        error = failure(top)

        redactor().seal(error)

        assert error.__cause__ is top
        assert top.__context__ is middle
        assert isinstance(middle.__cause__, RedactedCause)
        assert isinstance(middle.__context__, RedactedCause)
        assert str(middle.__cause__) == "OSError: ***"
        printed = assert_no_key(error)
        assert "RuntimeError: top" in printed
        assert "ValueError: middle" in printed

    def test_the_cause_of_a_group_member_is_replaced(self) -> None:
        member = ValueError("harmless")
        member.__cause__ = OSError(f"header Authorization: {KEY}")
        group = exception_group("several", [member, OSError("clean")])
        error = failure(group)

        redactor().seal(error)

        assert error.__cause__ is group  # the group itself showed nothing
        assert isinstance(member.__cause__, RedactedCause)
        printed = assert_no_key(error)
        assert "ValueError: harmless" in printed
        assert "OSError: header Authorization: ***" in printed

    def test_a_group_with_a_member_showing_a_key_is_replaced_whole(self) -> None:
        group = exception_group("several", [OSError("clean"), OSError(f"key {SECRET}")])
        error = failure(group)

        redactor().seal(error)

        assert isinstance(error.__cause__, RedactedCause)
        assert str(error.__cause__).startswith("ExceptionGroup: several")
        assert_no_key(error)

    def test_an_unprintable_cause_becomes_its_type_name(self) -> None:
        error = failure(UnprintableError())

        redactor().seal(error)

        assert isinstance(error.__cause__, RedactedCause)
        assert str(error.__cause__) == "UnprintableError"

    def test_a_cause_whose_text_is_only_the_key_keeps_the_type_and_the_mask(self) -> None:
        error = failure(OSError(KEY))
        redactor().seal(error)
        assert str(error.__cause__) == "OSError: ***"

    def test_a_link_seen_twice_does_not_stop_the_walk(self) -> None:
        # `raise ... from exc` inside `except` makes exc both cause and context.
        shared = ValueError("shared")
        clean = RuntimeError("clean")
        clean.__cause__ = clean.__context__ = shared
        leaky = ValueError("wrapper")
        leaky.__cause__ = OSError(f"key {KEY}")
        error = APIConnectionError("dropped")
        error.__cause__, error.__context__ = leaky, clean

        redactor().seal(error)

        assert isinstance(leaky.__cause__, RedactedCause)
        assert_no_key(error)

    def test_a_cycle_in_the_chain_ends(self) -> None:
        first, second = ValueError("a"), ValueError("b")
        first.__context__, second.__context__ = second, first
        error = failure(first)

        redactor().seal(error)

        assert error.__cause__ is first
        assert first.__context__ is second

    def test_a_clean_chain_is_left_as_it_is(self) -> None:
        cause = json.JSONDecodeError("Expecting value", '{"a": oops}', 6)
        error = ResponseValidationError("not JSON", status=200)
        error.__cause__ = cause
        error.__context__ = cause

        redactor().seal(error)

        assert error.__cause__ is cause
        assert error.__context__ is cause

    def test_without_keys_nothing_is_replaced(self) -> None:
        cause = OSError(KEY)
        error = failure(cause)
        NO_SECRETS.seal(error)
        assert error.__cause__ is cause

    def test_the_stand_in_is_an_exception_with_the_original_type_in_its_text(self) -> None:
        error = failure(ConnectionError(f"{KEY} at the start"))
        redactor().seal(error)
        stand_in = error.__cause__
        assert type(stand_in) is RedactedCause
        assert isinstance(stand_in, Exception)
        assert stand_in.args == ("ConnectionError: *** at the start",)
