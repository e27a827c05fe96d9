"""The documentation: its code runs, its pages show only tested code, and it builds.

The pages show their code inline, and ``docs/conftest.py`` runs it with Sybil, checking
each ```` ```text ```` block against what the code above it printed; the tests here
check that this harness catches a broken page. Whole programs stay files under
``docs/examples/``: ``run_example`` runs one the way a reader would
(``python docs/examples/x.py``) and fails on a non-zero exit or on the marks of a leak
(an unclosed session, a destroyed task) in its stderr. A test forbids Python on a page
that Sybil does not run, so the code a reader sees is the code that ran here.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import kodmobi_async
import kodmobi_async.testing
from kodmobi_async import CodeCheck, ManualMessage, SentCode, Session, Verification
from kodmobi_async._cli_output import CHANNEL_FIELDS, ERROR_FIELDS
from kodmobi_async.testing import FakeKodMobi

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.py"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

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
        assert len(ALL_EXAMPLES) >= 3


class TestTheRunnerCatchesBrokenExamples:
    """The suite must fail when an example breaks, not only when it is missing."""

    PROGRAM = """
import asyncio

from kodmobi_async import KodMobiClient
from kodmobi_async.testing import FakeKodMobi


async def main() -> None:
    async with FakeKodMobi() as fake:
        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:
            await client.get_session_channels()


if __name__ == "__main__":
    asyncio.run(main())
"""

    def program(self, tmp_path: Path, old: str = "", new: str = "") -> Path:
        assert old in self.PROGRAM
        path = tmp_path / "example.py"
        path.write_text(self.PROGRAM.replace(old, new), encoding="utf-8")
        return path

    def test_a_sound_example_passes(self, tmp_path: Path) -> None:
        run_example(self.program(tmp_path))

    def test_an_example_that_raises_fails(self, tmp_path: Path) -> None:
        broken = self.program(tmp_path, "client.get_session_channels()", "client.get_channels()")

        with pytest.raises(ExampleFailedError, match="exited 1") as caught:
            run_example(broken)

        assert "AttributeError" in str(caught.value)

    def test_an_example_that_leaks_a_connection_pool_fails(self, tmp_path: Path) -> None:
        # Exits 0, but leaves the client (and its aiohttp session) open.
        broken = self.program(
            tmp_path,
            "        async with KodMobiClient(api_key=fake.api_key, base_url=fake.url) as client:",
            "        client = await KodMobiClient(api_key=fake.api_key, base_url=fake.url)"
            ".__aenter__()\n        if True:",
        )

        with pytest.raises(ExampleFailedError, match="Unclosed"):
            run_example(broken)


def _load_page_harness() -> Any:
    spec = importlib.util.spec_from_file_location("docs_conftest", DOCS / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE_HARNESS = _load_page_harness()


class TestThePagesCatchBrokenCode:
    """``docs/conftest.py`` must fail a page whose code or output is wrong."""

    def run_page(self, tmp_path: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
        source = (DOCS / "index.md").read_text(encoding="utf-8")
        assert old in source, f"{old!r} is no longer in index.md; update this test"
        (tmp_path / "index.md").write_text(source.replace(old, new), encoding="utf-8")
        (tmp_path / "conftest.py").write_bytes((DOCS / "conftest.py").read_bytes())
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KODMOBI_")}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", "."],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    def test_the_page_as_it_is_passes(self, tmp_path: Path) -> None:
        result = self.run_page(tmp_path, "", "")

        assert result.returncode == 0, result.stdout
        assert re.search(r"\b2 passed\b", result.stdout), result.stdout

    def test_code_that_raises_fails(self, tmp_path: Path) -> None:
        result = self.run_page(tmp_path, "client.get_session_channels()", "client.get_channels()")

        assert result.returncode == 1
        assert "AttributeError" in result.stdout

    def test_output_unlike_the_page_fails(self, tmp_path: Path) -> None:
        result = self.run_page(tmp_path, '"inactive"', '"off"')

        assert result.returncode == 1
        assert "the page shows:" in result.stdout
        assert "telegram Telegram off" in result.stdout

    def test_output_the_page_does_not_show_fails(self, tmp_path: Path) -> None:
        result = self.run_page(tmp_path, "```text\nwhatsapp", "```console\nwhatsapp")

        assert result.returncode == 1
        assert "output that no ```text block shows" in result.stdout

    def test_numbers_may_vary_only_where_the_page_says(self) -> None:
        assert PAGE_HARNESS._shape("took 3.5 s, 61 x 429") == PAGE_HARNESS._shape(
            "took 12.0 s, 7 x 429"
        )
        assert PAGE_HARNESS._shape("61 x 429") != PAGE_HARNESS._shape("61 x 503 retries")


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
    def test_shows_python_only_where_it_runs(self, page: Path) -> None:
        allowed = set(ALLOWED_FENCES)
        if PAGE_HARNESS.SYBIL.should_parse(page):
            allowed.add("python")
        for directive, language, body in fences(page):
            if directive is None:
                assert language in allowed, (
                    f"{page.name}: a ```{language} block that no test runs; "
                    "include a tested file instead"
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

    def test_the_pages_with_inline_code_are_run(self) -> None:
        run = {str(p.relative_to(DOCS)) for p in PAGES if PAGE_HARNESS.SYBIL.should_parse(p)}

        assert {
            "index.md",
            "tutorial.md",
            "howto/batch.md",
            "howto/errors.md",
            "howto/configuration.md",
        } <= run
        assert "howto/cli.md" not in run

    def test_every_example_is_shown_somewhere(self) -> None:
        shown = {target for page in PAGES for target in includes_of(page)}

        assert set(ALL_EXAMPLES) <= shown

    def test_the_cli_page_lists_every_machine_field(self) -> None:
        text = (DOCS / "howto" / "cli.md").read_text(encoding="utf-8")
        documented = set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))

        assert documented == {*CHANNEL_FIELDS, *ERROR_FIELDS}

    def test_the_cli_page_names_every_flow_commands_answer_fields(self) -> None:
        text = (DOCS / "howto" / "cli.md").read_text(encoding="utf-8")
        rows = re.findall(r"^\| `kodmobi ([\w-]+)[^`]*` \|.*\| ([^|]+) \|$", text, re.MULTILINE)
        documented = {
            command: [name.strip("` ") for name in re.split(r",\s*", answer)]
            for command, answer in rows
        }
        models = {
            "create": Session,
            "send": SentCode,
            "check": CodeCheck,
            "verify": Verification,
            "manual-send": ManualMessage,
        }

        # The page adds notes in parentheses, such as "`code` (encrypted)".
        shown = {
            command: [re.sub(r"\s*\(.*\)$", "", name).strip("` ") for name in names]
            for command, names in documented.items()
        }
        assert shown == {
            command: [field.name for field in attrs.fields(model)]
            for command, model in models.items()
        }


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
