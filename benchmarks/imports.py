"""What ``import kodmobi_async`` costs next to ``import aiohttp``: ``python benchmarks/imports.py``.

Each import runs in a fresh interpreter (``python -c "import NAME"``), the two
alternating, and the table shows the median wall time of each and their ratio, with a
bare interpreter's start-up for reference. Issue 11's target is a ratio of at most 1.2.

Python caches compiled modules as ``.pyc`` files. ``pip install`` writes them for
aiohttp and for an installed kodmobi-async, but not for an editable install, and with
``PYTHONDONTWRITEBYTECODE`` set (as on CI machines and in many containers) Python never
writes them itself: every import then compiles the package's source again, which is
not what a user's application pays. So the measurement gives both interpreters one
bytecode cache of their own (``PYTHONPYCACHEPREFIX``, a temporary folder), filled by a
first import that is not counted; ``--no-bytecode`` measures the uncached case too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

__all__ = ["main", "measure"]

TARGET = 1.2
MODULES = ("aiohttp", "kodmobi_async")


def _wall(code: str, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)  # noqa: S603 -- our interpreter
    return time.perf_counter() - started


def measure(runs: int, *, bytecode: bool) -> dict[str, float]:
    """Median seconds of a fresh interpreter that imports each module, and of a bare one.

    Args:
        runs: Interpreters started per module (alternating, so drift hits both).
        bytecode: Give the interpreters a warm bytecode cache, as an installed package
            has; otherwise every import compiles the source.

    Returns:
        ``{"python": ..., "aiohttp": ..., "kodmobi_async": ...}``.
    """
    with tempfile.TemporaryDirectory(prefix="kodmobi-import-") as cache:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
        if bytecode:
            _wall("import aiohttp, kodmobi_async", env)  # fills the cache; not counted
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        times: dict[str, list[float]] = {"python": [], **{name: [] for name in MODULES}}
        for index in range(runs):
            order = MODULES if index % 2 == 0 else MODULES[::-1]
            for name in order:
                times[name].append(_wall(f"import {name}", env))
            times["python"].append(_wall("pass", env))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit status 1 with ``--check-target`` when the ratio is over 1.2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="interpreters per module")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="also measure without a bytecode cache"
    )
    parser.add_argument("--check-target", action="store_true", help="exit 1 above 1.2 x")
    args = parser.parse_args(argv)
    cases = [True, False] if args.no_bytecode else [True]
    version = sys.version.split()[0]
    print(f"import time, median of {args.runs} fresh interpreters each, Python {version}")
    print("bytecode cache  bare python  aiohttp  kodmobi_async  ratio  target")
    met = True
    for bytecode in cases:
        medians = measure(args.runs, bytecode=bytecode)
        ratio = medians["kodmobi_async"] / medians["aiohttp"]
        verdict = "PASS" if ratio <= TARGET else "MISS"
        if bytecode:
            met = ratio <= TARGET
        print(
            f"{'warm' if bytecode else 'none':<14}  {medians['python'] * 1000:8.0f} ms"
            f"  {medians['aiohttp'] * 1000:4.0f} ms  {medians['kodmobi_async'] * 1000:10.0f} ms"
            f"  {ratio:5.2f}  <= {TARGET} x: {verdict if bytecode else 'not a target'}"
        )
    return 1 if args.check_target and not met else 0


if __name__ == "__main__":
    sys.exit(main())
