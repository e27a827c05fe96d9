"""SeenIds: exact duplicate detection that moves to disk past a threshold."""

from __future__ import annotations

from kodmobi_async._seen import SeenIds
from kodmobi_async.testing import new_session_id


class TestSeenIds:
    def test_reports_each_id_new_exactly_once(self) -> None:
        seen = SeenIds()
        assert seen.add("A")
        assert not seen.add("A")
        assert seen.add("B")
        assert not seen.spilled
        seen.close()

    def test_stays_exact_after_moving_to_disk(self) -> None:
        seen = SeenIds(spill_after=100)
        ids = [new_session_id() for _ in range(1_000)]
        assert all(seen.add(i) for i in ids)
        assert seen.spilled
        # Both the ids that moved to disk and those added afterwards are remembered.
        assert not any(seen.add(i) for i in ids)
        assert seen.add(new_session_id())
        seen.close()

    def test_close_forgets_everything_and_can_be_repeated(self) -> None:
        seen = SeenIds(spill_after=2)
        for i in ["a", "b", "c"]:
            seen.add(i)
        seen.close()
        seen.close()
        assert not seen.spilled
        assert seen.add("a")
