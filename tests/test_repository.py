"""The repository's promises to a new user: README's commands, CI, the changelog."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kodmobi_async.testing import FakeKodMobi

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```console\n(.*?)```", text, re.DOTALL)
    assert first_block, "README must open with a console block of its two commands"
    return [line for line in first_block.group(1).splitlines() if line and line[0] != "#"]


class TestReadme:
    def test_opens_with_the_demo_and_the_test_command(self) -> None:
        demo, tests = readme_commands()
        assert "kodmobi demo" in demo
        assert "[cli]" in demo
        assert "pytest" in tests

    def test_ci_runs_readmes_test_command_verbatim(self) -> None:
        _, tests = readme_commands()
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
        assert tests in ci.splitlines()


class TestChangelog:
    def test_keeps_an_unreleased_section_in_keep_a_changelog_form(self) -> None:
        text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        assert "## [Unreleased]" in text
        assert "keepachangelog.com" in text
        sections = re.findall(r"^### (\w+)", text, re.MULTILINE)
        assert sections
        assert set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


class TestReadmeQuickStart:
    def test_quick_start_runs_against_the_fake(self, tmp_path: Path) -> None:
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        program = re.search(r"```python\n(.*?)```", text, re.DOTALL)
        assert program
        script = tmp_path / "quickstart.py"
        script.write_text(program.group(1), encoding="utf-8")
        with FakeKodMobi.in_thread() as fake:
            fake.add_session(
                "01HZX3Q8V6W4T1N6B2C3D4E5F6",
                channels=[{"name": "SMS", "type": "sms", "is_active": True, "timeout": 12}],
            )
            env = {**os.environ, "KODMOBI_API_KEY": fake.api_key, "KODMOBI_BASE_URL": fake.url}
            done = subprocess.run(  # noqa: S603 -- our interpreter on README's own code
                [sys.executable, "-W", "error", str(script)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["sms", "True", "12"]


def build(kind: str, out: Path) -> Path:
    """Build the sdist or the wheel with hatchling's PEP 517 hook, as pip would."""
    code = f"import sys, hatchling.build as b; print(b.build_{kind}(sys.argv[1]))"
    done = subprocess.run(  # noqa: S603 -- our interpreter, the project's own build backend
        [sys.executable, "-c", code, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out / done.stdout.split()[-1]


@pytest.fixture(scope="module")
def sdist_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    path = build("sdist", tmp_path_factory.mktemp("sdist"))
    with tarfile.open(path) as archive:
        # Drop the "kodmobi_async-0.1.0/" every member starts with.
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


class TestLicense:
    def test_is_the_mit_license_of_the_developers(self) -> None:
        text = (ROOT / "LICENSE").read_text(encoding="utf-8")
        assert text.startswith("MIT License\n")
        assert "Copyright (c) 2026 kodmobi-async developers" in text
        pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        assert 'license = "MIT"' in pyproject
        assert 'license-files = ["LICENSE"]' in pyproject

    def test_ships_in_the_wheel_and_its_metadata(self, tmp_path: Path) -> None:
        with zipfile.ZipFile(build("wheel", tmp_path)) as wheel:
            names = wheel.namelist()
            metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
            dist_info = metadata.rsplit("/", 1)[0]
            assert f"{dist_info}/licenses/LICENSE" in names
            assert wheel.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
            lines = wheel.read(metadata).decode().splitlines()
        assert "License-Expression: MIT" in lines
        assert "License-File: LICENSE" in lines

    def test_ships_in_the_sdist(self, sdist_names: set[str]) -> None:
        assert "LICENSE" in sdist_names


class TestSdist:
    def test_holds_every_file_the_suite_reads(self, sdist_names: set[str]) -> None:
        # The suite run from an unpacked sdist reads these (TestReadme reads .ci/run).
        for name in (".ci/run", "README.md", "CHANGELOG.md", "pyproject.toml", "noxfile.py"):
            assert name in sdist_names
        shipped_tests = {name for name in sdist_names if name.startswith("tests/")}
        in_repo = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / "tests").rglob("*.py")
            if "__pycache__" not in path.parts
        }
        assert in_repo <= shipped_tests
