"""Which ids a streamed batch has already taken, exactly, in memory that stays flat.

A stream of a million ids must look each distinct id up once, so it has to remember
every id it has seen; as Python strings in a set that is about 100 MB. The first ids
go into a set (most batches never leave it); past a threshold they move into a private
temporary SQLite database, which keeps them on disk behind a small page cache, so
memory stops growing while the check stays exact. SQLite ships with CPython; where a
build lacks it, the set simply keeps growing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SeenIds"]

#: Ids held in the set before moving to the database (about 6 MiB of strings).
SPILL_AFTER = 65_536


class SeenIds:
    """An exact set of ids with an ``add`` that says whether the id was new.

    Args:
        spill_after: How many ids to keep in memory before moving them to disk.
    """

    __slots__ = ("_db", "_recent", "_spill_after")

    def __init__(self, spill_after: int = SPILL_AFTER) -> None:
        self._recent: set[str] = set()
        self._spill_after = spill_after
        self._db: Any = None

    def add(self, session_id: str) -> bool:
        """Remember ``session_id``; return True the first time, False for a duplicate."""
        if session_id in self._recent:
            return False
        if self._db is not None:
            # One statement both checks and records: rowcount is 0 for a duplicate.
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO seen VALUES (?)", (session_id,)
            ).rowcount
            return bool(inserted)
        self._recent.add(session_id)
        if len(self._recent) >= self._spill_after:
            self._spill()
        return True

    def _spill(self) -> None:
        try:
            import sqlite3
        except ImportError:  # pragma: no cover -- CPython built without SQLite
            self._spill_after = 2**63  # keep everything in memory, as a plain set would
            return
        # "" opens a private on-disk database that SQLite deletes when it is closed.
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        # Nothing here needs to survive a crash: skip the journal and the fsyncs.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((i,) for i in self._recent))
        self._db = db
        self._recent = set()

    @property
    def spilled(self) -> bool:
        """Whether the ids have moved to the on-disk database."""
        return self._db is not None

    def close(self) -> None:
        """Drop everything; the temporary database file is deleted."""
        self._recent = set()
        db, self._db = self._db, None
        if db is not None:
            db.close()
