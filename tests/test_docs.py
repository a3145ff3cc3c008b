"""The docs cannot rot: every ```python block runs, every relative link resolves, and every link to a
kernel line (``file.py#L<n>``) lands on that kernel's ``def`` or ``class``."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[`?([^\]`]+)`?\]\(([^)#\s]+)(?:#L(\d+))?\)")


def python_blocks():
    for path in DOCS:
        for k, m in enumerate(re.finditer(r"```python\n(.*?)```", path.read_text(), re.S)):
            yield pytest.param(m.group(1), id=f"{path.relative_to(ROOT)}#{k}")


@pytest.mark.parametrize("code", list(python_blocks()))
def test_python_snippet_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    exec(compile(code, "<doc snippet>", "exec"), {"__name__": "__doc_snippet__"})


def test_there_are_snippets_in_readme_and_docs():
    ids = [p.id for p in python_blocks()]
    assert any(i.startswith("README") for i in ids) and sum(i.startswith("docs") for i in ids) >= 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_and_kernel_lines_are_right(doc):
    for text, target, line in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (doc.parent / target).resolve()
        assert path.exists(), f"{doc.name}: link to missing {target}"
        if line:
            src = path.read_text().splitlines()
            at = src[int(line) - 1]
            assert re.match(rf"\s*(def|class) {re.escape(text)}\b", at), \
                f"{doc.name}: {target}#L{line} is {at.strip()!r}, not the def of {text}"
