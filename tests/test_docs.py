"""The docs cannot rot: every ```python block runs, every relative link resolves, and every link to a
kernel line (``file.py#L<n>``) lands on that kernel's ``def`` or ``class``."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[`?([^\]`]+)`?\]\(([^)#\s]+)(?:#L(\d+))?\)")


SEQUENTIAL = "<!-- doc-test: sequential -->"  # a page whose blocks continue one another (the walkthrough)


def python_blocks():
    for path in DOCS:
        text = path.read_text()
        blocks = re.findall(r"```python\n(.*?)```", text, re.S)
        if SEQUENTIAL in text:  # every block in order, in one namespace
            yield pytest.param("\n".join(blocks), id=f"{path.relative_to(ROOT)}#all")
            continue
        for k, code in enumerate(blocks):
            yield pytest.param(code, id=f"{path.relative_to(ROOT)}#{k}")


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


def shell_lines():
    for path in DOCS:
        for m in re.finditer(r"```(?:bash|sh|console)\n(.*?)```", path.read_text(), re.S):
            for line in m.group(1).splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    yield path.relative_to(ROOT), line.strip()


def test_shell_snippets_are_real_commands():
    """Shell snippets install packages or train for minutes, so they are not run here: this test says which
    ones it skipped (as warnings in pytest's summary) and checks that each names a real command and option."""
    import warnings

    from minidin.cli import build_parser

    parser = build_parser()
    not_run = []
    for doc, line in shell_lines():
        for part in re.split(r"&&|;", line):
            words = part.split()
            if not words or words[0] != "minidin":
                continue
            p, rest = parser, words[1:]
            while rest and not rest[0].startswith("-") and p._subparsers is not None:
                choices = p._subparsers._group_actions[0].choices
                assert rest[0] in choices, f"{doc}: {part.strip()!r}: unknown command {rest[0]}"
                p, rest = choices[rest[0]], rest[1:]
            for a in (w for w in rest if w.startswith("--")):
                assert a.split("=")[0] in p._option_string_actions, f"{doc}: {part.strip()!r} uses unknown option {a}"
        not_run.append(f"{doc}: {line}")
    for item in not_run:
        warnings.warn(f"shell snippet not run by the tests: {item}")
    assert not_run  # the README's Quick start is here


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # everything below space but tab, newline, CR


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(doc):
    """A backslash escape eaten by a Python string (\\b, \\f in "\\beta", "\\frac") leaves a control
    character where the LaTeX was; name the line."""
    for n, line in enumerate(doc.read_text().splitlines(), 1):
        m = CONTROL.search(line)
        assert m is None, f"{doc.name}:{n}: control character {m.group()!r} in {line.strip()[:60]!r}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_never_point_outside_the_repository(doc):
    for n, line in enumerate(doc.read_text().splitlines(), 1):
        assert "../shared" not in line, f"{doc.name}:{n}: points outside the repository"
        for _, target, _ in LINK.findall(line):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (doc.parent / target).resolve().is_relative_to(ROOT), f"{doc.name}:{n}: {target}"


def test_the_walkthrough_notebook_is_generated_from_the_page():
    """docs/walkthrough.ipynb is docs/walkthrough.md's cells, outputs cleared: regenerate and compare."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "docs" / "make_notebook.py"), "--stdout"], capture_output=True,
                         text=True, check=True).stdout
    nb = json.loads((ROOT / "docs" / "walkthrough.ipynb").read_text())
    assert json.loads(out) == nb, "docs/walkthrough.ipynb is out of date: run python docs/make_notebook.py"


def test_the_walkthrough_notebook_runs(tmp_path, monkeypatch):
    """Its code cells, in order, in one namespace, as a notebook kernel would run them (no Jupyter needed)."""
    import json

    nb = json.loads((ROOT / "docs" / "walkthrough.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "walkthrough.ipynb", "exec"), {"__name__": "__notebook__"})
