"""Keeping the client's secrets out of every text it builds.

A key reaches text in ways no single code path controls: a server that echoes it in an
error body or a ``Location`` header, a validation message that quotes a field, an
aiohttp exception whose ``repr`` carries the request headers. So the rule is applied
twice: :class:`Redactor` masks secrets in every string the SDK composes, and
:meth:`Redactor.seal` checks the finished exception and its whole chain (causes,
contexts, exception groups) and replaces any link that would still show a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["MASK", "NO_SECRETS", "RedactedCause", "Redactor"]

MASK = "***"
# Nested values in error_params are copied only this deep; JSON deeper than this was
# already refused by the protocol's depth limit.
_MAX_DEPTH = 32


class RedactedCause(Exception):  # noqa: N818 -- stands in for an exception, not a failure
    """Stands in for an exception whose text showed a secret.

    It keeps the original's type name and its message with the secret masked, so a
    traceback still says what went wrong underneath.
    """


class Redactor:
    """Masks a fixed set of secrets (API keys) in text, bytes and exceptions.

    Args:
        secrets: The strings never to show; empty ones are ignored. Their
            percent-encoded forms are masked too.
    """

    __slots__ = ("_bytes", "_texts")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms.add(secret)
                forms.add(quote(secret, safe=""))
        # Longest first, so a secret that contains another is masked whole.
        self._texts = tuple(sorted(forms, key=len, reverse=True))
        self._bytes = tuple(form.encode("utf-8", "surrogatepass") for form in self._texts)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._texts)} forms>"

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``***``."""
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def body(self, value: bytes) -> bytes:
        """``value`` with every secret's UTF-8 bytes replaced by ``***``."""
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, MASK.encode())
        return value

    def shows(self, value: str) -> bool:
        """Whether ``value`` contains a secret."""
        return any(secret in value for secret in self._texts)

    def data(self, value: Any, depth: int = 0) -> Any:
        """A copy of decoded JSON with every string (keys included) masked."""
        if isinstance(value, str):
            return self.text(value)
        if depth >= _MAX_DEPTH:
            return MASK
        if isinstance(value, Mapping):
            return {self.data(k, depth + 1): self.data(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item, depth + 1) for item in value]
        return value

    def seal(self, error: BaseException) -> None:
        """Make sure no exception reachable from ``error`` shows a secret.

        ``error`` itself is one of the SDK's own and was built from masked text; any
        linked exception (``__cause__``, ``__context__``, members of a group) whose
        ``str`` or ``repr`` shows a secret is replaced by a :class:`RedactedCause`.
        """
        if not self._texts:
            return
        stack: list[BaseException] = [error]
        seen: set[int] = set()
        while stack:
            link = stack.pop()
            if id(link) in seen:
                continue
            seen.add(id(link))
            for attr in ("__cause__", "__context__"):
                linked = getattr(link, attr)
                if linked is None:
                    continue
                if self.exposes(linked):
                    setattr(link, attr, self._stand_in(linked))
                else:
                    stack.append(linked)
            # A group's members cannot be swapped, but a traceback prints their own
            # causes and contexts too, so those links are sealed like any other.
            members = getattr(link, "exceptions", None)
            if isinstance(members, tuple):
                stack.extend(m for m in members if isinstance(m, BaseException))

    def exposes(self, exc: BaseException) -> bool:
        """Whether ``exc`` shows a secret in its text, its args or its attributes.

        Attributes count: a ``JSONDecodeError`` keeps the whole body as ``doc``. The
        members of an exception group count too, as its traceback prints them.
        """
        if not self._texts:
            return False
        try:
            values: list[object] = [exc, *exc.args, *vars(exc).values()]
            if any(self.shows(str(v)) or self.shows(repr(v)) for v in values):
                return True
            # A member counts whole (its attributes and notes too): it cannot be
            # replaced on its own, only with the group.
            members = getattr(exc, "exceptions", None)
            return isinstance(members, tuple) and any(
                isinstance(m, BaseException) and self.exposes(m) for m in members
            )
        except Exception:  # unprintable: treat as unsafe
            return True

    def _stand_in(self, exc: BaseException) -> RedactedCause:
        try:
            text = self.text(str(exc))
        except Exception:  # a str() that fails leaves the type name
            text = ""
        name = type(exc).__name__
        stand_in = RedactedCause(f"{name}: {text}" if text else name)
        stand_in.__suppress_context__ = True
        return stand_in


#: A redactor with nothing to hide, for pure functions called without a client.
NO_SECRETS = Redactor(())
