"""Write docs/walkthrough.ipynb from docs/walkthrough.md (the Markdown is the source; outputs cleared).

    python docs/make_notebook.py [--stdout]

Text becomes Markdown cells and each ```python block a code cell, in order. No dependency: the notebook
JSON (nbformat 4) is written directly.
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cells(text):
    out = []
    for k, part in enumerate(re.split(r"```python\n(.*?)```", text, flags=re.S)):
        part = part.strip("\n")
        if k % 2 == 1:
            out.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": part.splitlines(keepends=True)})
        elif part.strip() and not part.strip().startswith("<!--"):
            part = "\n".join(line for line in part.splitlines() if not line.startswith("<!-- doc-test"))
            out.append({"cell_type": "markdown", "metadata": {}, "source": part.strip("\n").splitlines(keepends=True)})
    return out


def notebook(text):
    return {"cells": cells(text), "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                              "name": "python3"},
                                               "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


if __name__ == "__main__":
    nb = json.dumps(notebook((HERE / "walkthrough.md").read_text()), indent=1, ensure_ascii=False) + "\n"
    if "--stdout" in sys.argv:
        sys.stdout.write(nb)
    else:
        (HERE / "walkthrough.ipynb").write_text(nb)
        print(f"wrote {HERE / 'walkthrough.ipynb'}")
