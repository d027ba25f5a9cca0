"""The README's first commands stay true: CI runs exactly the README's test command."""

from helpers import REPO


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [line.strip() for line in lines[:12] if line.startswith("    ")]


def test_readme_opens_with_demo_and_test_commands():
    demo, tests = readme_commands()[:2]
    assert "pytest healthchecks --demo" in demo and demo.startswith("python3 -m venv .venv")
    assert "pytest tests" in tests and tests.startswith("python3 -m venv .venv")


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (REPO / ".ci" / "run").read_text().splitlines()
