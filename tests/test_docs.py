"""Every ```python block in README.md and docs/*.md runs, so the docs cannot rot."""
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks():
    for path in DOCS:
        text = path.read_text()
        for k, m in enumerate(re.finditer(r"```python\n(.*?)```", text, re.S)):
            yield pytest.param(m.group(1), id=f"{path.name}#{k}")


@pytest.mark.parametrize("code", list(python_blocks()))
def test_python_snippet_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    exec(compile(code, "<doc snippet>", "exec"), {"__name__": "__doc_snippet__"})


def test_there_are_snippets():
    assert len(list(python_blocks())) >= 2
