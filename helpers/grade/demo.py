"""A class of generated submissions, to try the grader on (and what tests/test_grade.py grades).

    python -m helpers.grade.demo DIR [--notebooks 01_find_neurons 06_contrasts]
    write_class(DIR, notebooks) -> {(student, notebook, label): (status, key)}   what grading must find

Each student's notebooks are the student versions (notebooks/exercises/) with exercise cells filled in from
the solution notebooks (notebooks/0*.ipynb), as the student below did:

    ada    every exercise right
    ben    one named mistake per exercise (MISTAKES)
    cy     handed in the exercise notebook as it came (every stub still raises), notebook 01 only
    dee    (a) ends the kernel with os._exit: crashed; the others right (graded after the restart)
    eve    (a) loops forever: timed out; (c) divides by zero: an error; (b) right
    al     (a)'s cell also deletes and writes around it: its own working folder, a file next to that folder,
           another student's submitted notebook in DIR (ben's 01, graded after al's), and prints 3 MB;
           every exercise right

Other notebooks (02-04) are handed in by ada only (right answers) when asked for with --notebooks.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

from .submissions import EXERCISES, HEADER, ROOT

SOLUTIONS = ROOT / "notebooks"
DEFAULT = ("01_find_neurons", "06_contrasts")

# (label): (key, old text in the solution, new text): a change that makes the check name `key`
MISTAKES = {
    "(a)": ("forgot-cls", "return inside[-1]", "return inside[-1] - 1"),
    "(b)": ("post-gelu", 'mlp_module_name(model, layer, "pre")', 'mlp_module_name(model, layer, "post")'),
    "(c)": ("uncorrected", "significant = fdrcorrection(res.pvalue, alpha=q)[0]", "significant = res.pvalue < q"),
    "(h)": ("too-few-pairs", None, None),        # the contrast file keeps 5 of its pairs (see _few_pairs)
}
VANDAL = '''import os, shutil
from pathlib import Path
here = Path.cwd()
(here.parent / "al-was-here.txt").write_text("written outside its folder")
for victim in {victims!r}:
    if os.path.exists(victim):
        os.remove(victim)
shutil.rmtree(here, ignore_errors=True)
print("spam " * 600_000)
'''


def solutions(stem: str) -> dict[str, str]:
    """{label: source} of the solution notebook's exercise cells."""
    nb = nbformat.read(SOLUTIONS / f"{stem}.ipynb", as_version=4)
    return {HEADER.match(c.source).group(1): c.source for c in nb.cells
            if c.cell_type == "code" and HEADER.match(c.source)}


def _first_statement(src: str, code: str) -> str:
    """`code` as the first statement of the function the exercise cell defines (after its docstring)."""
    lines = src.split("\n")
    k = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
    indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
    return "\n".join(lines[:k + 1] + [indent + c for c in code.split("\n")] + lines[k + 1:])


def _few_pairs(src: str, keep: int = 5) -> str:
    out, seen = [], 0
    for line in src.split("\n"):
        if line.startswith("pair\\t"):
            seen += 1
            if seen > keep:
                continue
        out.append(line)
    return "\n".join(out)


def mistaken(label: str, src: str) -> str:
    key, old, new = MISTAKES[label]
    if old is None:
        return _few_pairs(src)
    if old not in src:
        raise SystemExit(f"helpers.grade.demo: the solution of {label} no longer holds {old!r}: update MISTAKES")
    return src.replace(old, new, 1)


def fill(stem: str, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The student version of `stem` with each exercise cell in `answers` ({label: source}) replaced."""
    nb = nbformat.read(EXERCISES / f"{stem}.ipynb", as_version=4)
    for cell in nb.cells:
        m = HEADER.match(cell.source) if cell.cell_type == "code" else None
        if m and m.group(1) in answers:
            cell.source = answers[m.group(1)]
    return nb


def write_class(folder: Path, notebooks=DEFAULT) -> dict:
    """Write the class (module docstring) under `folder` (DIR/student/notebook.ipynb); returns what grading
    must find: {(student, notebook, label): (status, key)}."""
    folder = Path(folder)
    expected = {}

    def hand_in(student, stem, answers, outcome):
        nb = fill(stem, answers)
        (folder / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / student / f"{stem}.ipynb")
        for label in solutions(stem):
            expected[student, stem, label] = outcome.get(label, ("not_done", ""))

    for stem in notebooks:
        right = solutions(stem)
        hand_in("ada", stem, right, {k: ("passed", "") for k in right})
        if stem not in ("01_find_neurons", "06_contrasts"):
            continue
        hand_in("ben", stem, {k: mistaken(k, v) for k, v in right.items()},
                {k: ("mistake", MISTAKES[k][0]) for k in right})
        if stem != "01_find_neurons":
            continue
        victims = [str((folder / "ben" / f"{stem}.ipynb").resolve())]
        hand_in("al", stem, {**right, "(a)": right["(a)"] + "\n" + VANDAL.format(victims=victims)},
                {k: ("passed", "") for k in right})
        hand_in("cy", stem, {}, {})
        hand_in("dee", stem, {**right, "(a)": _first_statement(right["(a)"], "import os; os._exit(3)")},
                {"(a)": ("crashed", ""), "(b)": ("passed", ""), "(c)": ("passed", "")})
        hand_in("eve", stem, {**right, "(a)": _first_statement(right["(a)"], "while True:\n    pass"),
                              "(c)": _first_statement(right["(c)"], "return 1 / 0")},
                {"(a)": ("timeout", ""), "(b)": ("passed", ""), "(c)": ("error", "")})
    return expected


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.grade.demo", description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--notebooks", nargs="+", default=list(DEFAULT), metavar="STEM")
    a = p.parse_args(argv)
    expected = write_class(a.folder, a.notebooks)
    students = sorted({s for s, _, _ in expected})
    print(f"wrote {len({(s, n) for s, n, _ in expected})} notebooks of {len(students)} students "
          f"({', '.join(students)}) under {a.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
