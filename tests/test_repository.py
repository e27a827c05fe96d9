"""The repository's promises to a new user: README's commands, CI, the changelog."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
