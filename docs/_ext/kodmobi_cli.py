"""The ``kodmobi`` directive: show what the command line really prints.

In a page::

    ```{kodmobi} channels --format jsonl 01HZX3Q8V6W4T1N6B2C3D4E5F6
    :exit: 0
    ```

runs ``kodmobi channels --format jsonl ...`` while the docs build, in this process,
against a fake kod.mobi that holds the sessions of :data:`SESSIONS` (its public and its
secret key in the environment, as a reader's shell would have them), and shows the
command line and its output (stdout, then stderr) as a console block. The build fails
if the command exits with another status than ``:exit:`` (0 by default), so the pages
cannot drift from the program.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
from typing import ClassVar
from unittest import mock

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from kodmobi_async._cli import main as kodmobi_main
from kodmobi_async.testing import FakeKodMobi

#: Sessions the pages may use, with the state of their channels.
SESSIONS = {
    "01HZX3Q8V6W4T1N6B2C3D4E5F6": {"sms": 42},  # an SMS went out 18 s ago
    "01HZX3Q8V6W4T1N6B2C3D4E5F7": {},
}
#: A well-formed id the fake does not know.
UNKNOWN_SESSION = "01HZX3Q8V6W4T1N6B2C3D4E5F8"
#: argparse wraps help to the terminal; pin it so builds do not depend on one.
COLUMNS = "88"


class _BuildFake:
    """The fake kod.mobi of one build: started on first use, stopped at the end."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._fake: FakeKodMobi | None = None

    def get(self) -> FakeKodMobi:
        if self._fake is None:
            fake = self._stack.enter_context(FakeKodMobi.in_thread())
            for session_id, timeouts in SESSIONS.items():
                fake.add_session(session_id)
                for channel_type, seconds in timeouts.items():
                    fake.set_channel_state(session_id, channel_type, timeout=seconds)
            self._fake = fake
        return self._fake

    def stop(self, app: Sphinx, exception: BaseException | None) -> None:
        self._fake = None
        self._stack.close()


_build_fake = _BuildFake()


def run(argv: list[str]) -> tuple[int, str]:
    """Run the command line with ``argv``; return its exit status and its output."""
    fake = _build_fake.get()
    out, err = io.StringIO(), io.StringIO()
    env = {
        "KODMOBI_API_KEY": fake.api_key,
        "KODMOBI_SECRET_KEY": fake.secret_key,
        "KODMOBI_BASE_URL": fake.url,
        "COLUMNS": COLUMNS,
    }
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            status = kodmobi_main(argv)
        except SystemExit as exit_:  # --help and --version exit through argparse
            status = exit_.code if isinstance(exit_.code, int) else 0
    return status, out.getvalue() + err.getvalue()


class KodmobiDirective(SphinxDirective):
    """Run ``kodmobi ARGS`` and show the command with its output."""

    required_arguments = 0
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[dict[str, object]] = {"exit": directives.nonnegative_int}

    def run(self) -> list[nodes.Node]:
        arguments = self.arguments[0] if self.arguments else ""
        argv = shlex.split(arguments)
        expected = self.options.get("exit", 0)
        status, output = run(argv)
        if status != expected:
            msg = f"`kodmobi {arguments}` exited {status}, not {expected}:\n{output}"
            raise self.error(msg)
        text = f"$ kodmobi {arguments}".rstrip() + "\n" + output.rstrip("\n")
        block = nodes.literal_block(text, text, language="console")
        self.set_source_info(block)
        return [block]


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive, and stop the fake when the build ends."""
    app.add_directive("kodmobi", KodmobiDirective)
    app.connect("build-finished", _build_fake.stop)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
