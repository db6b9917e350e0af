"""Write the student versions of the notebooks: notebooks/exercises/, from the solution notebooks in notebooks/.

    python scripts/exercises.py            (re)write notebooks/exercises/*.ipynb
    python scripts/exercises.py --check    exit 1 (naming the files) when the committed versions are stale

The solution notebooks are the one source of truth (executed, nbval-tested). In them, an exercise is a
code cell whose first line is `# exercise: (a) target_position` and which holds a solution region, in the
manner of nbgrader:

    def target_position(tokenizer, sentence, word):
        ### BEGIN SOLUTION
        ### HINT: tokenize with return_offsets_mapping=True and find the pieces inside the word
        enc = tokenizer(sentence, return_offsets_mapping=True)
        ...
        ### END SOLUTION

In the student version the region (markers included) becomes `raise NotImplementedError("Hint: ...")` at
the region's indentation, so the function is defined but fails at the check cell that follows it, with the
hint. A cell whose first line is `# solution only` is left out; markdown is kept as it is (hints and the
answers to "Think" questions sit in collapsed <details> blocks in both versions). Outputs, execution counts
and widget state are cleared; the Colab badge and the setup cell point at the exercise copy.
Why not nbgrader or jupytext: nbgrader's grading database and its Jupyter extensions are not needed for
self-study, and jupytext pairs formats rather than stripping solutions; this script is ~100 lines with
no dependency beyond nbformat, and its output is checked by tests/test_exercises.py.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
TARGET = SOURCE / "exercises"
EXERCISE = re.compile(r"^# exercise: (.+)$")
BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", "### HINT:"
SOLUTION_ONLY = "# solution only"
BANNER = ("> **Exercise version.** The code cells that start with `# exercise:` are yours to fill in; run the "
          "check cell under each ([how the checks work](../../docs/exercises.md)). The worked solution, with "
          "every output, is [`notebooks/{name}`](../{name}).")


def _stub(lines: list[str], where: str) -> list[str]:
    """The cell's lines with each solution region replaced by a NotImplementedError carrying its hint."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != BEGIN:
            if line.strip() == END:
                raise SystemExit(f"{where}: {END} without {BEGIN}")
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        hint, j = [], i + 1
        while j < len(lines) and lines[j].strip() != END:
            if lines[j].strip().startswith(HINT):
                hint.append(lines[j].strip()[len(HINT):].strip())
            j += 1
        if j == len(lines):
            raise SystemExit(f"{where}: {BEGIN} without {END}")
        if not hint:
            raise SystemExit(f"{where}: a solution region needs a '{HINT} ...' line (the stub's message)")
        text = " ".join(hint).replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{indent}raise NotImplementedError("Hint: {text}")')
        i = j + 1
    return out


def student_version(nb, name: str):
    """The exercise notebook made from solution notebook `nb` (called `name`)."""
    nb = copy.deepcopy(nb)
    cells = []
    for k, cell in enumerate(nb.cells):
        src = cell.source.split("\n")
        if cell.cell_type == "code":
            if src[0].strip() == SOLUTION_ONLY:
                continue
            if EXERCISE.match(src[0].strip()):
                cell.source = "\n".join(_stub(src, f"{name} cell {k}"))
            elif any(line.strip() in (BEGIN, END) for line in src):
                raise SystemExit(f"{name} cell {k}: a solution region outside an '# exercise: ...' cell")
            cell.outputs, cell.execution_count = [], None
        cell.source = cell.source.replace(f"blob/main/notebooks/{name}", f"blob/main/notebooks/exercises/{name}")
        if cell.cell_type == "markdown":                  # one folder deeper: relative links gain a ../
            cell.source = re.sub(r"\]\((?!https?:|#|/)", "](../", cell.source)
        cell.metadata.pop("execution", None)
        cells.append(cell)
    cells.insert(1, nbformat.v4.new_markdown_cell(BANNER.format(name=name)))
    for c in cells:
        c.pop("id", None)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    nb.nbformat_minor = 4                     # no cell ids: stable files
    return nb


def render(path: Path) -> str:
    """The exercise notebook's file content for solution notebook `path`."""
    nb = nbformat.read(path, as_version=4)
    return nbformat.writes(student_version(nb, path.name)) + "\n"


def sources() -> list[Path]:
    """The solution notebooks that hold at least one exercise."""
    return [p for p in sorted(SOURCE.glob("*.ipynb")) if "# exercise: " in p.read_text(encoding="utf-8")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only report stale or missing exercise notebooks")
    a = ap.parse_args(argv)
    stale = []
    TARGET.mkdir(exist_ok=True)
    for path in sources():
        want, out = render(path), TARGET / path.name
        if out.exists() and out.read_text(encoding="utf-8") == want:
            continue
        stale.append(out.relative_to(ROOT))
        if not a.check:
            out.write_text(want, encoding="utf-8")
    extra = sorted(set(p.name for p in TARGET.glob("*.ipynb")) - {p.name for p in sources()})
    if a.check and (stale or extra):
        print("stale: " + ", ".join(map(str, stale + extra)) + "; run `make exercises`", file=sys.stderr)
        return 1
    print(f"{'checked' if a.check else 'wrote'} {len(sources())} exercise notebooks in {TARGET.relative_to(ROOT)}"
          + (f" ({len(stale)} changed)" if stale and not a.check else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
