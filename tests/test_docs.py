"""The documentation: its examples run, its pages show only tested code, and it builds.

Every ``docs/examples/*.py`` is a complete program. ``run_example`` runs one the way a
reader would (``python docs/examples/x.py``) and fails on a non-zero exit or on the
marks of a leak (an unclosed session, a destroyed task) in its stderr; the tests below
then check what each example printed. The pages include the examples with
``literalinclude``, and a test forbids any other Python block, so the code a reader
sees is the code that ran here.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import kodmobi_async
import kodmobi_async.testing
from kodmobi_async._cli_output import CHANNEL_FIELDS, ERROR_FIELDS
from kodmobi_async.testing import FakeKodMobi

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.py"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

sys.path.insert(0, str(EXAMPLES))

import batch_checks  # noqa: E402 -- the examples are importable once their folder is on the path
import configuration  # noqa: E402
import errors_and_retries  # noqa: E402
import quickstart  # noqa: E402
import tutorial_batch  # noqa: E402
import tutorial_errors  # noqa: E402
import tutorial_lookup  # noqa: E402

# What in an example's stderr means it leaked or crashed, even if it exited 0.
RED_FLAGS = (
    "Traceback",
    "Exception ignored",
    "Unclosed",
    "Task was destroyed",
    "Task exception was never retrieved",
    "was never awaited",
    "ResourceWarning",
)


class ExampleFailedError(AssertionError):
    """An example exited with an error, or left the marks of a leak."""


def run_example(
    path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``path`` as its own program, as a reader would.

    The child gets no ``KODMOBI_*`` variables unless ``env`` sets them, so an example
    runs against its own fake kod.mobi; warnings are errors.

    Raises:
        ExampleFailedError: It exited non-zero, or its stderr shows a leak or a crash.
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("KODMOBI_")}
    child_env.update(env or {})
    child_env["PYTHONWARNINGS"] = "error"
    result = subprocess.run(  # noqa: S603 -- our own interpreter and files
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=path.parent,
        check=False,
    )
    flags = [flag for flag in RED_FLAGS if flag in result.stderr]
    if result.returncode != 0 or flags:
        msg = (
            f"{path.name} exited {result.returncode}"
            + (f" with {', '.join(flags)} in its stderr" if flags else "")
            + f"\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        raise ExampleFailedError(msg)
    return result


def lines(text: str) -> list[str]:
    return text.strip("\n").splitlines()


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    # Examples that configure the SDK's logger must leave it as they found it.
    import logging

    sdk_logger = logging.getLogger("kodmobi_async")
    before = (list(sdk_logger.handlers), sdk_logger.level, sdk_logger.propagate)
    yield
    assert (list(sdk_logger.handlers), sdk_logger.level, sdk_logger.propagate) == before


class TestEveryExample:
    @pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.name)
    def test_runs_as_a_program_against_its_own_fake(self, path: Path) -> None:
        run_example(path)

    @pytest.mark.parametrize(
        "path", [p for p in ALL_EXAMPLES if not p.name.startswith("test_")], ids=lambda p: p.name
    )
    def test_runs_against_the_service_in_the_environment(
        self, path: Path, kodmobi_fake: FakeKodMobi
    ) -> None:
        # What a reader with a real key gets: KODMOBI_BASE_URL set, ids as arguments.
        session_id = kodmobi_fake.add_session()
        env = {"KODMOBI_API_KEY": kodmobi_fake.api_key, "KODMOBI_BASE_URL": kodmobi_fake.url}

        run_example(path, session_id, env=env)

        assert kodmobi_fake.requests, f"{path.name} did not ask the configured service"
        assert all(r.headers["x-api-key"] == kodmobi_fake.api_key for r in kodmobi_fake.requests)

    @pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.name)
    def test_is_a_program_with_a_main(self, path: Path) -> None:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        guards = [
            node
            for node in tree.body
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        ]

        assert "main" in functions
        assert guards, f"{path.name} has no `if __name__ == '__main__':`"
        assert ast.get_docstring(tree), f"{path.name} has no module docstring"

    @pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.name)
    def test_stands_alone(self, path: Path) -> None:
        # Readers copy an example out of the repository: it must not import another.
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            for name in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
        }

        assert not imported & {p.stem for p in ALL_EXAMPLES}

    def test_there_are_examples(self) -> None:
        assert len(ALL_EXAMPLES) >= 9


class TestTheRunnerCatchesBrokenExamples:
    """The suite must fail when an example breaks, not only when it is missing."""

    def copy_example(self, tmp_path: Path, name: str, old: str, new: str) -> Path:
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        assert old in source, f"{old!r} is no longer in {name}; update this test"
        broken = tmp_path / name
        broken.write_text(source.replace(old, new), encoding="utf-8")
        return broken

    def test_an_example_that_raises_fails(self, tmp_path: Path) -> None:
        broken = self.copy_example(
            tmp_path, "quickstart.py", "client.get_session_channels()", "client.get_channels()"
        )

        with pytest.raises(ExampleFailedError, match="exited 1") as caught:
            run_example(broken)

        assert "AttributeError" in str(caught.value)

    def test_an_example_that_leaks_a_connection_pool_fails(self, tmp_path: Path) -> None:
        # Exits 0, but leaves the client (and its aiohttp session) open.
        broken = self.copy_example(
            tmp_path,
            "quickstart.py",
            "    async with KodMobiClient() as client:",
            "    client = await KodMobiClient().__aenter__()\n    if True:",
        )

        with pytest.raises(ExampleFailedError, match="Unclosed"):
            run_example(broken)

    def test_an_example_whose_output_changed_fails_its_test(self, tmp_path: Path) -> None:
        broken = self.copy_example(tmp_path, "quickstart.py", '"inactive"', '"active"')

        output = run_example(broken).stdout

        with pytest.raises(AssertionError):
            TestQuickstart.check_output(output)


class TestQuickstart:
    @staticmethod
    def check_output(output: str) -> None:
        assert lines(output) == [
            "whatsapp WhatsApp active",
            "telegram Telegram inactive",
            "sms SMS active",
            "email Email active",
        ]

    async def test_prints_the_project_channels(self, capsys: pytest.CaptureFixture[str]) -> None:
        await quickstart.main()

        self.check_output(capsys.readouterr().out)

    async def test_reads_the_key_and_url_from_the_environment(
        self, kodmobi_fake_env: FakeKodMobi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await quickstart.main()

        self.check_output(capsys.readouterr().out)
        [request] = kodmobi_fake_env.requests
        assert request.headers["x-api-key"] == kodmobi_fake_env.api_key

    async def test_leaves_the_environment_as_it_was(self) -> None:
        await quickstart.main()

        assert "KODMOBI_API_KEY" not in os.environ
        assert "KODMOBI_BASE_URL" not in os.environ


class TestTutorial:
    async def test_lookup_explains_each_channel_state(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await tutorial_lookup.main([])

        out = lines(capsys.readouterr().out)
        assert out[0] == "The project sends codes by: whatsapp, telegram, sms, email"
        assert re.fullmatch(r"Session [0-7][0-9A-Z]{25}:", out[1])
        assert out[2:] == [
            "  WhatsApp: ready",
            "  Telegram: not reachable, the user must first open https://t.me/kodmobi_bot",
            "  SMS: can send again in 42 s",
            "  Email: ready",
            "  MAX: a channel type this SDK does not know yet",
        ]

    async def test_lookup_asks_the_configured_service_about_the_given_ids(
        self, kodmobi_fake_env: FakeKodMobi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        session_id = kodmobi_fake_env.add_session()

        await tutorial_lookup.main([session_id])

        out = lines(capsys.readouterr().out)
        assert out[1] == f"Session {session_id}:"
        assert [r.session_id for r in kodmobi_fake_env.requests] == [None, session_id]

    async def test_batch_reports_every_id_once(self, capsys: pytest.CaptureFixture[str]) -> None:
        await tutorial_batch.main([])

        out = lines(capsys.readouterr().out)
        assert out[0] == "3 looked up, 2 failed"
        assert out[1].endswith(": sms, email")  # WhatsApp was switched off for the first
        assert out[2].endswith(": whatsapp, sms, email")
        assert out[3].endswith(": whatsapp, sms, email")
        assert out[4].endswith(": NotFoundError")
        assert out[5] == "  not-a-session-id: InvalidSessionIdError"
        assert len(out) == 6  # the duplicate id was looked up once

    async def test_errors_end_each_case_as_described(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await tutorial_errors.main([])

        assert lines(capsys.readouterr().out) == [
            "a healthy session: ready on whatsapp, sms, email",
            "a session behind two 503s: ready on whatsapp, sms, email",
            "a session whose lookups always fail: kod.mobi is unavailable "
            "(gave up after 4 attempts)",
            "an unknown session: kod.mobi does not know this session; it may have expired",
            "a malformed id: not a session id (nothing was sent)",
        ]


class TestBatchChecks:
    async def test_reports_outcomes_budget_and_pause(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await batch_checks.main([])

        out = capsys.readouterr().out
        assert "400 sessions: 390 reachable, 10 failed\n  NotFoundError: 10\n" in out
        assert [line for line in lines(out) if "looked up" in line] == [
            f"  {n}/400 looked up" for n in (100, 200, 300, 400)
        ]
        exported = [line for line in lines(out) if line.startswith('{"session_id"')]
        assert len(exported) == 5
        assert exported.count(next(e for e in exported if "NotFoundError" in e)) == 1

        outage = re.search(r"outage: 200 lookups sent (\d+) requests", out)
        assert outage is not None
        assert 200 < int(outage.group(1)) <= 200 + 20  # N + budget, not N x attempts
        assert "RetryBudgetExhaustedError: 200" in out

        paced = re.search(
            r"limit 200/s: 300 of 300 answered in ([\d.]+) s \(at least 1.5 s\), "
            r"(\d+) x 429, pacing at (\d+)/s",
            out,
        )
        assert paced is not None
        assert float(paced.group(1)) >= 1.3  # the server's pace, burst included
        assert int(paced.group(2)) < 150  # the client slowed down instead of hammering
        assert 20 <= int(paced.group(3)) <= 400


class TestErrorsAndRetries:
    async def test_shows_the_fields_and_the_waits(self, capsys: pytest.CaptureFixture[str]) -> None:
        await errors_and_retries.main()

        assert lines(capsys.readouterr().out) == [
            "NotFoundError: status=404 sys_message='ERROR_MESSAGE_NOT_FOUND' "
            "error='Session not found' error_params={} retry_after=None attempts=1",
            "RateLimitError: status=429 sys_message='ERROR_TOO_MANY_REQUESTS' "
            "error='Too Many Requests' error_params={} retry_after=30.0 attempts=2",
            "ServerError: status=502 sys_message=None error='502 Bad Gateway' "
            "error_params={} retry_after=None attempts=2",
            "503 x4: waited [0.25, 0.5, 1.0], then ServerError",
            "503 x2: waited [0.25, 0.5], then answered",
            "429, Retry-After 3: waited [3.0], then answered",
            "503, retries off: waited [], then ServerError",
        ]

    def test_the_tuned_policies_fit_their_deadlines(self) -> None:
        interactive = errors_and_retries.interactive_client(api_key="k")
        nightly = errors_and_retries.nightly_client(api_key="k")

        assert interactive.timeout == 3.0
        assert interactive.retry_policy.attempts == 2
        assert nightly.timeout == 120.0
        assert nightly.retry_policy.budget == 1000


class TestConfiguration:
    async def test_logs_masked_ids_and_never_the_key(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await configuration.main()

        out = capsys.readouterr().out
        assert out.startswith("<KodMobiClient open base_url='http://127.0.0.1:")
        assert "timeout=5 attempts=3>" in out
        assert FakeKodMobi.DEFAULT_API_KEY not in out
        log_lines = [line for line in lines(out) if line.startswith(("DEBUG", "WARNING"))]
        assert [line.split()[0] for line in log_lines] == [
            "DEBUG",  # 503
            "WARNING",  # the retry
            "DEBUG",  # 200
            "DEBUG",  # 404
            "DEBUG",  # 200, through the caller's own aiohttp session
        ]
        assert "attempt 1 of 3 failed with ServerError" in log_lines[1]
        for line in log_lines:
            masked = re.search(r"session=([0-7][0-9A-Z]{5})…([0-9A-Z]{4}) ", line)
            assert masked is not None, line
            assert not re.search(r"[0-7][0-9A-Z]{25}", line), line  # no whole id
        assert (
            "NotFoundError: kod.mobi answered 404 ERROR_MESSAGE_NOT_FOUND: Сессия не найдена" in out
        )

    async def test_a_caller_session_stays_open(self, kodmobi_fake_env: FakeKodMobi) -> None:
        import aiohttp

        from kodmobi_async import KodMobiClient

        session_id = kodmobi_fake_env.add_session()
        async with aiohttp.ClientSession() as session:
            async with KodMobiClient(session=session) as client:
                await client.get_session_channels(session_id)
            assert not session.closed
        await configuration.through_your_session(session_id)  # it closes its own

        assert await kodmobi_fake_env.wait_connections_closed()

    def test_the_documented_client_is_what_it_says(self) -> None:
        client = configuration.make_client("k", "https://api.kod.mobi")

        assert (client.timeout, client.language) == (5.0, "ru")
        assert client.retry_policy.attempts == 3


class TestYourCodeExample:
    def test_its_tests_pass(self) -> None:
        result = run_example(EXAMPLES / "test_your_code.py")

        summary = lines(result.stdout)[-1]
        assert re.fullmatch(r"7 passed in [\d.]+s", summary), result.stdout


# -- the pages ------------------------------------------------------------------------

INCLUDE = re.compile(r"^```\{literalinclude\}\s+(\S+)", re.MULTILINE)
FENCE = re.compile(
    r"^(`{3,})[ \t]*(\{[\w:-]+\})?[ \t]*([\w+-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL
)
# Fences that show no runnable Python: shell sessions, plain text, and directives.
ALLOWED_FENCES = {"console", "text", "toml", "json", "csv", "ini", ""}


def fences(page: Path) -> list[tuple[str | None, str, str]]:
    """Each fenced block of a page: its directive (or None), its language, its body."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(2), m.group(3), m.group(4)) for m in FENCE.finditer(text)]


def includes_of(page: Path) -> list[Path]:
    return [(page.parent / target).resolve() for target in INCLUDE.findall(page.read_text())]


class TestPages:
    def test_there_are_pages(self) -> None:
        names = {str(p.relative_to(DOCS)) for p in PAGES}
        assert {
            "index.md",
            "tutorial.md",
            "howto/fastapi.md",
            "howto/worker.md",
            "howto/batch.md",
            "howto/errors.md",
            "howto/testing.md",
            "howto/configuration.md",
            "howto/cli.md",
            "reference/api.md",
            "reference/testing.md",
            "changelog.md",
        } <= names

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
    def test_shows_python_only_from_tested_files(self, page: Path) -> None:
        for directive, language, body in fences(page):
            if directive is None:
                assert language in ALLOWED_FENCES, (
                    f"{page.name}: a ```{language} block; include a tested file instead"
                )
            elif directive in {"{code-block}", "{code}", "{sourcecode}"}:
                pytest.fail(f"{page.name}: {directive} shows untested code")
            if language in {"text", ""} and directive is None:
                # Program output, not Python dressed up as text.
                with pytest.raises(SyntaxError):
                    ast.parse(body)

    @pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
    def test_includes_only_tested_files(self, page: Path) -> None:
        tests_of_examples = set((ROOT / "tests").glob("test_examples_*.py"))
        tested = {*ALL_EXAMPLES, *tests_of_examples, ROOT / "CHANGELOG.md"}
        for target in includes_of(page):
            assert target in tested, f"{page.name} includes {target}, which no test runs"

    def test_every_example_is_shown_somewhere(self) -> None:
        shown = {target for page in PAGES for target in includes_of(page)}

        assert set(ALL_EXAMPLES) <= shown

    def test_the_cli_page_lists_every_machine_field(self) -> None:
        text = (DOCS / "howto" / "cli.md").read_text(encoding="utf-8")
        documented = set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))

        assert documented == {*CHANNEL_FIELDS, *ERROR_FIELDS}


# -- the build ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """Build the site once for this module, as ``nox -s docs`` does.

    Sphinx's ``-W`` fails the build on any warning *Sphinx* logs. Python's deprecation
    warnings from the docs tooling itself (MyST on Sphinx 9 warns about an API that
    Sphinx 11 removes) are not about these docs, so they stay warnings here, as they
    are under ``nox -s docs``.
    """
    # The tests extra installs the docs extra: a missing Sphinx is an error, not a skip.
    from sphinx.cmd import build as sphinx_build

    out = tmp_path_factory.mktemp("html")
    doctrees = tmp_path_factory.mktemp("doctrees")
    args: Sequence[str] = ["-W", "--keep-going", "-n", "-q", "-b", "html"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        status = sphinx_build.build_main([*args, "-d", str(doctrees), str(DOCS), str(out)])
    return status, out


class TestBuild:
    def test_builds_without_a_warning(self, built_docs: tuple[int, Path]) -> None:
        status, _ = built_docs

        assert status == 0

    def test_documents_every_public_name(self, built_docs: tuple[int, Path]) -> None:
        from sphinx.util.inventory import InventoryFile

        _, out = built_docs
        with (out / "objects.inv").open("rb") as stream:
            inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
        documented = {name for objects in inventory.values() for name in objects}

        for module in (kodmobi_async, kodmobi_async.testing):
            for name in module.__all__:
                assert f"{module.__name__}.{name}" in documented, name
        assert "kodmobi_async.KodMobiClient.gather_session_channels" in documented
        assert {"kodmobi_fake", "kodmobi_fake_env"} <= documented  # the pytest fixtures

    def test_the_changelog_is_a_page(self, built_docs: tuple[int, Path]) -> None:
        _, out = built_docs
        page = (out / "changelog.html").read_text(encoding="utf-8")

        assert "Unreleased" in page
        assert "KodMobiClient" in page
