"""Tests of the pytest plugin, as a user's project meets it: in a pytest run of its own.

Each test writes a small project with pytester and runs pytest on it in a subprocess,
where the plugin loads through its ``pytest11`` entry point, as it does for users.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

# What a user's test module looks like: the fixture, and the client over real sockets.
USER_TESTS = """
import pytest

from kodmobi_async import KodMobiClient

{marker}
async def test_looks_a_session_up(kodmobi_fake):
    session_id = kodmobi_fake.add_session()
    async with KodMobiClient(api_key=kodmobi_fake.api_key, base_url=kodmobi_fake.url) as client:
        channels = await client.get_session_channels(session_id)
    assert [channel.name for channel in channels]


def test_sync_tests_are_left_alone(kodmobi_fake_env):
    assert kodmobi_fake_env.url
"""

# pytest-asyncio's own default, stated so that its "unset" deprecation warning stays out.
LOOP_SCOPE = "asyncio_default_fixture_loop_scope = function\n"


def run_user_project(
    pytester: pytest.Pytester, ini: str, *, marker: str = "", args: tuple[str, ...] = ()
) -> pytest.RunResult:
    pytester.makeini(f"[pytest]\n{ini}")
    pytester.makepyfile(test_user=USER_TESTS.format(marker=marker))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


class TestAsyncTestsInStrictMode:
    def test_an_unmarked_test_fails_saying_what_to_set(self, pytester: pytest.Pytester) -> None:
        result = run_user_project(pytester, LOOP_SCOPE)

        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                "test_looks_a_session_up is an async def test (it uses kodmobi_fake) that no "
                "plugin ran: pytest-asyncio runs only tests marked @pytest.mark.asyncio in its "
                'strict mode, the default.*set asyncio_mode = "auto" under '
                "[[]tool.pytest.ini_options[]] in pyproject.toml*",
            ]
        )
        result.stdout.no_fnmatch_line("*not natively supported*")

    def test_a_marked_test_runs(self, pytester: pytest.Pytester) -> None:
        result = run_user_project(pytester, LOOP_SCOPE, marker="@pytest.mark.asyncio")

        result.assert_outcomes(passed=2)

    def test_auto_mode_runs_it_unmarked(self, pytester: pytest.Pytester) -> None:
        result = run_user_project(pytester, LOOP_SCOPE + "asyncio_mode = auto\n")

        result.assert_outcomes(passed=2)

    def test_anyio_runs_it_marked_for_anyio(self, pytester: pytest.Pytester) -> None:
        result = run_user_project(
            pytester,
            LOOP_SCOPE,
            marker='@pytest.mark.anyio\n@pytest.mark.parametrize("anyio_backend", ["asyncio"])',
        )

        result.assert_outcomes(passed=2)


class TestAsyncTestsWithoutPytestAsyncio:
    def test_an_unmarked_test_fails_saying_what_to_install(self, pytester: pytest.Pytester) -> None:
        result = run_user_project(pytester, "", args=("-p", "no:asyncio"))

        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            ["*pytest cannot run async tests by itself. Install pytest-asyncio and set*"]
        )


class TestOtherAsyncTests:
    def test_are_left_to_pytests_own_message(self, pytester: pytest.Pytester) -> None:
        pytester.makeini(f"[pytest]\n{LOOP_SCOPE}")
        pytester.makepyfile("async def test_not_ours():\n    pass\n")

        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])
        result.stdout.no_fnmatch_line("*no plugin ran*")


class TestImportCost:
    def test_loading_the_plugin_imports_neither_the_fake_nor_pytest_asyncio(self) -> None:
        code = (
            "import sys, kodmobi_async._pytest_plugin\n"
            "heavy = {'aiohttp.web', 'pytest_asyncio', 'kodmobi_async.testing._server'}\n"
            "assert not heavy & set(sys.modules), heavy & set(sys.modules)"
        )

        done = subprocess.run(  # noqa: S603 -- our own interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )

        assert done.returncode == 0, done.stderr
