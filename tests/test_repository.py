"""The repository's promises to a new user: README's commands, CI, the changelog."""

from __future__ import annotations

import re
from pathlib import Path

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
