"""What a batch gives back: one outcome per id, in a mapping that keeps input order.

A leaf module: it depends on the models and the errors only, so the errors can name
:class:`BatchResult` (``partial_result``) and the batch helper can build one without
either importing the other's machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Union

from ._errors import KodMobiError
from ._models import SessionChannel

__all__ = ["BatchResult", "Outcome", "ProgressCallback"]

#: What one id ends with: its channels, or the error that stopped its lookup.
Outcome = Union[list[SessionChannel], KodMobiError]  # noqa: UP007 -- a runtime alias on 3.10
#: ``on_progress(done, total)``; ``total`` is ``None`` when the input has no length.
ProgressCallback = Callable[[int, Union[int, None]], None]  # noqa: UP007


class BatchResult(Mapping[str, Outcome]):
    """The outcome of every distinct id of a batch, in input order.

    A read-only mapping ``session_id -> list[SessionChannel] | KodMobiError``, with
    the successes and failures also split out::

        results = await client.gather_session_channels(ids)
        for session_id, channels in results.ok.items(): ...
        for session_id, error in results.errors.items(): ...

    Attributes:
        not_looked_up: Ids read from the input whose lookup never finished because
            the batch was stopped (an authentication failure); empty otherwise.
    """

    __slots__ = ("_outcomes", "not_looked_up")

    not_looked_up: tuple[str, ...]

    def __init__(self, outcomes: dict[str, Outcome], not_looked_up: tuple[str, ...] = ()) -> None:
        self._outcomes = outcomes
        self.not_looked_up = not_looked_up

    def __bool__(self) -> bool:
        """True when the batch holds anything: an outcome or an id not looked up."""
        return bool(self._outcomes) or bool(self.not_looked_up)

    def __getitem__(self, session_id: str) -> Outcome:
        return self._outcomes[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outcomes)

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def ok(self) -> dict[str, list[SessionChannel]]:
        """Ids whose lookup succeeded, with their channels, in input order."""
        return {k: v for k, v in self._outcomes.items() if not isinstance(v, KodMobiError)}

    @property
    def errors(self) -> dict[str, KodMobiError]:
        """Ids whose lookup failed, with the error, in input order."""
        return {k: v for k, v in self._outcomes.items() if isinstance(v, KodMobiError)}

    def __repr__(self) -> str:
        failed = sum(1 for v in self._outcomes.values() if isinstance(v, KodMobiError))
        extra = f", not_looked_up={len(self.not_looked_up)}" if self.not_looked_up else ""
        return f"<BatchResult ok={len(self._outcomes) - failed} errors={failed}{extra}>"
