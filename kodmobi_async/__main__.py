"""``python -m kodmobi_async``: the same as the ``kodmobi`` command."""

from __future__ import annotations

from kodmobi_async._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
