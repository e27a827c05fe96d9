"""Developer tasks: ``nox -l`` lists them, ``nox`` runs tests, lint, mypy and docs."""

from __future__ import annotations

import glob
import os
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
    # The pages show only code from docs/examples/; these run every one of them.
    session.run(
        "pytest",
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
