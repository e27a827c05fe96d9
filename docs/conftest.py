"""Run the code the documentation pages show, and check what it prints.

Sybil collects each page below as a pytest file. Every ```` ```python ```` block runs, in
page order, in one namespace per page, and so do the hidden set-up blocks written as
``<!-- invisible-code-block: python ... -->`` comments (invisible on GitHub and in the
built site). A page runs against a fake kod.mobi in a thread: ``KODMOBI_API_KEY`` and
``KODMOBI_BASE_URL`` point at it, as they would at kod.mobi in a reader's shell, and
the hidden blocks script it as ``fake``.

Every ```` ```text ```` block on these pages is the output of the code above it: the
Python blocks' standard output since the previous ```` ```text ```` block must equal it
line for line. Where some figures differ from run to run (timings, counts under a
race), an ``<!-- output: numbers vary -->`` comment just before the block lets every
number differ, and the hidden block after it checks them, from ``last_output``.

Whole programs (the FastAPI app, the worker, the example test module) stay files
under ``examples/`` that ``tests/test_docs.py`` runs; this file ignores them.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

from sybil import Document, Example, Region, Sybil
from sybil.parsers.myst import CodeBlockParser

from kodmobi_async.testing import FakeKodMobi

collect_ignore = ["conf.py", "examples", "_ext", "_build"]

#: The pages whose code runs here; the others show no Python, or only whole programs.
PAGES = ["index.md", "tutorial.md", "howto/*.md"]
#: Pages that show only whole programs (included files) or no code.
NOT_RUN = ["howto/cli.md", "howto/soak.md", "howto/fastapi.md", "howto/worker.md"]

STDOUT = "__stdout__"
LAST_OUTPUT = "last_output"

_TEXT_BLOCK = re.compile(
    r"^(?:<!-- output: (?P<option>[\w ]+) -->\n+)?```text\n(?P<body>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
NUMBERS_VARY = "numbers vary"


def _run(example: Example) -> None:
    """Run one Python block: top-level ``await`` allowed, its output kept for the page."""
    __tracebackhide__ = True
    source = "\n" * (example.line + example.parsed.line_offset) + example.parsed
    code = compile(
        source, example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    namespace = example.namespace
    # One buffer for the whole page: a log handler made on sys.stdout in one block
    # still writes where the next block's output goes.
    with contextlib.redirect_stdout(namespace[STDOUT]):
        result = eval(code, namespace)  # noqa: S307 -- the page's own code is what we test
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    namespace.pop("__builtins__", None)


def _expected_output(document: Document) -> Iterator[Region]:
    """Each ```text block of a page, as the output its preceding code must print."""
    for match in _TEXT_BLOCK.finditer(document.text):
        option = match.group("option")
        if option not in (None, NUMBERS_VARY):
            msg = f"{document.path}: unknown output option {option!r}"
            raise ValueError(msg)
        yield Region(match.start(), match.end(), (match.group("body"), option), _compare)


def _take(buffer: io.StringIO) -> str:
    """What was printed since the last call, emptying the buffer."""
    printed = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return printed


def _shape(text: str) -> str:
    return _NUMBER.sub("<n>", text)


def _compare(example: Example) -> str | None:
    """Compare the output printed since the last ```text block with this one."""
    expected, option = example.parsed
    namespace = example.namespace
    printed = _take(namespace[STDOUT])
    namespace[LAST_OUTPUT] = printed
    shape = _shape if option == NUMBERS_VARY else str
    if shape(printed) == shape(expected):
        return None
    return f"the page shows:\n{expected}\nthe code printed:\n{printed}"


def _start_fake(namespace: dict[str, Any]) -> None:
    """Point the environment at a fresh fake kod.mobi for the page, as a reader's shell."""
    stack = contextlib.ExitStack()
    fake = stack.enter_context(FakeKodMobi.in_thread())
    environment = {"KODMOBI_API_KEY": fake.api_key, "KODMOBI_BASE_URL": fake.url}
    stack.enter_context(mock.patch.dict(os.environ, environment))
    for name in [*os.environ]:
        # The developer's own settings must not change what a page prints.
        if name.startswith("KODMOBI_") and name not in environment:
            del os.environ[name]  # patch.dict puts it back
    namespace.update({"fake": fake, STDOUT: io.StringIO(), LAST_OUTPUT: "", "__stack__": stack})


def _stop_fake(namespace: dict[str, Any]) -> None:
    stack: contextlib.ExitStack = namespace.pop("__stack__")
    stack.close()
    unchecked = _take(namespace[STDOUT])
    assert not unchecked, f"output that no ```text block shows:\n{unchecked}"  # noqa: S101


SYBIL = Sybil(
    parsers=[CodeBlockParser("python", _run), _expected_output],
    patterns=PAGES,
    excludes=NOT_RUN,
    setup=_start_fake,
    teardown=_stop_fake,
    name="docs",
)
pytest_collect_file = SYBIL.pytest()
