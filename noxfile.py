"""Developer tasks: ``nox -l`` lists them, ``nox`` runs tests, lint, mypy and docs.

``nox -s mutate`` runs mutation testing (mutmut) one module at a time, each against its
own fast test files; name modules to run only those, and pass anything else on to
``mutmut run``::

    nox -s mutate -- _protocol                  # one module
    nox -s mutate -- _retry _throttle           # two modules, one run, both test sets
    nox -s mutate -- _batch --max-children 2    # fewer workers on a busy machine
    nox -s mutate -- _batch "*stream*"          # only mutants whose name matches

Each run works in a scratch copy, ``.nox/mutate/tmp/<modules>/``, and leaves it there:
``cd`` into it and ``../../bin/mutmut show <mutant>`` prints what a survivor changed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent

nox.options.sessions = ["tests", "lint", "mypy", "docs"]
nox.options.reuse_existing_virtualenvs = True
# Test on every supported Python this machine has; a missing one is skipped, not failed.
nox.options.error_on_missing_interpreters = False

# pyenv installs interpreters that are not on PATH unless selected; make them findable.
for _bin in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-3]*/bin"))):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage."""
    session.install("-e", ".[tests]")
    # `coverage run` rather than pytest-cov: the package's pytest plugin is imported
    # before pytest-cov starts, which would hide module-level lines from the report.
    env = {"COVERAGE_FILE": f".coverage.{session.python}"}
    session.run("coverage", "run", "-m", "pytest", *session.posargs, env=env)
    session.run("coverage", "combine", "--quiet", env=env)  # the CLI's subprocesses too
    session.run("coverage", "report", env=env)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over everything."""
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def mypy(session: nox.Session) -> None:
    """mypy --strict over the package, tests, benchmarks and doc examples."""
    session.install("-e", ".[dev]")
    session.run("mypy", *session.posargs)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the Sphinx site with warnings as errors and nitpicky references."""
    session.install("-e", ".[docs,tests]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"
    )
    # The pages' inline code runs with Sybil (docs/conftest.py); the included programs
    # run in tests/test_docs.py and the two end-to-end example tests.
    session.run(
        "pytest",
        "docs",
        "tests/test_docs.py",
        "tests/test_examples_fastapi.py",
        "tests/test_examples_worker.py",
    )


@nox.session(python="3.11")
def fuzz(session: nox.Session) -> None:
    """The property tests with thousands of examples each (the ``fuzz`` profile).

    Failures found are kept in ``.nox/hypothesis`` and replayed first on the next run.
    """
    session.install("-e", ".[tests]")
    session.run(
        "pytest",
        "tests/test_properties.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "fuzz"},
    )


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Run the benchmarks against a local server and print the comparison table."""
    session.install("-e", ".[tests]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python="3.11")
def soak(session: nox.Session) -> None:
    """Soak the FastAPI example under uvicorn against a faulty, restarting fake (~90 s)."""
    session.install("-e", ".[tests]", "uvicorn")
    session.run("python", "benchmarks/soak.py", *session.posargs)


# Each module's mutants are judged by the tests written for it: fast, with no sockets
# beyond the fake server, so a run takes minutes rather than the whole suite per mutant.
MUTATE_TESTS = {
    "_protocol": ["tests/test_protocol.py", "tests/test_errors.py"],
    "_converter": ["tests/test_converter.py", "tests/test_protocol.py"],
    "_retry": ["tests/test_retry.py"],
    "_throttle": [
        "tests/test_throttle.py",
        "tests/test_retry.py",
        # test_pace.py's pure classes; the rest of it runs batches on the real clock.
        "tests/test_pace.py::TestPaceArithmetic",
        "tests/test_pace.py::TestCeilingWindow",
    ],
    # test_flow_calls.py's pure classes; its other classes talk to a loopback server.
    "_calls": ["tests/test_flow_calls.py::TestArguments", "tests/test_flow_calls.py::TestRequests"],
    "_redact": ["tests/test_redact.py", "tests/test_protocol.py"],
    "_batch": ["tests/test_batch.py"],
}
# Load tests that take seconds each would run again for every mutant they reach; the
# small tests beside them cover the same code.
MUTATE_SKIP = [
    "tests/test_batch.py::TestGather::test_ten_thousand_ids_with_transient_failures_all_get_channels",
    "tests/test_batch.py::TestIter::test_async_generator_of_100k_ids_runs_on_a_bounded_pool",
]


@nox.session(python="3.11")
def mutate(session: nox.Session) -> None:
    """Mutation testing with mutmut, per module: ``nox -s mutate -- _protocol``."""
    session.install("-e", ".[mutate]")
    modules = [arg for arg in session.posargs if arg in MUTATE_TESTS]
    unknown = [arg for arg in session.posargs if arg.startswith("_") and arg not in MUTATE_TESTS]
    if unknown:
        session.error(f"no tests are mapped for {unknown}; choose from {sorted(MUTATE_TESTS)}")
    extra = [arg for arg in session.posargs if arg not in MUTATE_TESTS]
    groups = [[module] for module in MUTATE_TESTS] if not modules else [modules]
    for group in groups:
        _mutate_group(session, group, extra)


def _mutate_group(session: nox.Session, modules: list[str], extra: list[str]) -> None:
    # mutmut reads its settings from ./pyproject.toml and writes ./mutants/, so each
    # group runs in a scratch copy: the repository stays clean and groups do not mix.
    work = Path(session.create_tmp()) / "+".join(modules)
    if work.exists():
        shutil.rmtree(work)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "kodmobi_async", work / "kodmobi_async", ignore=skip)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=skip)
    tests = sorted({path for module in modules for path in MUTATE_TESTS[module]})
    # The shared settings stay in pyproject's [tool.mutmut]; the group's own go under it.
    header = "[tool.mutmut]\n"
    scoped = (
        f"only_mutate = {json.dumps([f'kodmobi_async/{module}.py' for module in modules])}\n"
        "pytest_add_cli_args_test_selection = "
        f"{json.dumps([*tests, *(f'--deselect={test}' for test in MUTATE_SKIP)])}\n"
    )
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if header not in text:
        session.error("pyproject.toml has no [tool.mutmut] table")
    (work / "pyproject.toml").write_text(text.replace(header, header + scoped), encoding="utf-8")
    with session.chdir(work):
        session.run("mutmut", "run", *extra)
        session.run("mutmut", "results")
