"""The README's first two commands are exactly what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_readme_opens_with_install_and_test_commands_that_ci_runs():
    install, test = readme_setup_commands()[:2]
    assert "pip install" in install and "[test]" in install
    assert "pytest" in test
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci_lines and test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)


def test_ci_builds_the_docs_strictly_with_the_docs_extra():
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert 'python -m pip install -e ".[docs]"' in ci_lines
    assert any(ln.startswith("mkdocs build --strict") for ln in ci_lines)
    # CI closes with the README's test command (offline), so its summary is what CI prints last
    assert ci_lines[-1].endswith(" " + readme_setup_commands()[1])
