"""The exercise notebooks (issue #18): generated from the solution notebooks, never stale, stopping at their
first stub with its hint; and the teaching text around them (answers, hints, times, prose length)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import exercises as gen  # noqa: E402

SOLUTIONS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
EXERCISE_NBS = gen.sources()


def _md(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def visible_words(text: str) -> int:
    """Words of markdown prose outside <details> blocks (code, links and HTML tags not counted)."""
    text = re.sub(r"<details>.*?</details>", " ", text, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(re.findall(r"[A-Za-z0-9][\w'’-]*", text))


# --- the generator ----------------------------------------------------------------------------------

def _toy():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T\n[badge](https://colab.research.google.com/github/x/y/blob/main/"
                                              "notebooks/t.ipynb) and [readme](../README.md), [top](#top)"),
                nbformat.v4.new_code_cell("# exercise: (z) f\ndef f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n"
                                          "    ### HINT: add one,\n    ### HINT: \"carefully\"\n    return x + 1\n"
                                          "    ### END SOLUTION"),
                nbformat.v4.new_code_cell("# solution only\nprint(f(1))"),
                nbformat.v4.new_code_cell("check(f)")]
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="✓ (z) f\n")]
    nb.cells[3].execution_count = 4
    return nb


def test_the_generator_stubs_solutions_and_keeps_everything_else():
    out = gen.student_version(_toy(), "t.ipynb")
    src = [c.source for c in out.cells]
    assert "Exercise version" in src[1] and "notebooks/t.ipynb" in src[1]
    assert src[2] == '# exercise: (z) f\ndef f(x):\n    """Doc."""\n    raise NotImplementedError("Hint: add one, ' \
                     '\\"carefully\\"")'
    assert "print(f(1))" not in "".join(src) and src[3] == "check(f)"          # solution-only cell gone
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in out.cells
               if c.cell_type == "code")
    assert "notebooks/exercises/t.ipynb" in src[0] and "](../../README.md)" in src[0] and "](#top)" in src[0]
    ns = {}
    exec(src[2], ns)                                  # the stub defines the function and raises the hint
    with pytest.raises(NotImplementedError, match=r'Hint: add one, "carefully"'):
        ns["f"](1)


@pytest.mark.parametrize("cell, says", [
    ("# exercise: (z) f\n    ### BEGIN SOLUTION\n    x = 1", "without ### END SOLUTION"),
    ("# exercise: (z) f\n    ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION", "needs a '### HINT:"),
    ("x = 1\n### BEGIN SOLUTION\n### HINT: h\n### END SOLUTION", "outside an '# exercise: ...' cell"),
    ("# exercise: (z) f\n### END SOLUTION", "without ### BEGIN SOLUTION"),
])
def test_the_generator_refuses_broken_markers(cell, says):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell(cell)]
    with pytest.raises(SystemExit, match=re.escape(says)):
        gen.student_version(nb, "t.ipynb")


def test_the_committed_exercise_notebooks_are_not_stale():
    stale = [p.name for p in EXERCISE_NBS
             if not (gen.TARGET / p.name).exists() or (gen.TARGET / p.name).read_text(encoding="utf-8") != gen.render(p)]
    extra = sorted({p.name for p in gen.TARGET.glob("*.ipynb")} - {p.name for p in EXERCISE_NBS})
    assert not stale and not extra, f"stale: {stale}, no source: {extra}; run `make exercises`"


# --- what the exercises cover -------------------------------------------------------------------------

def _exercises() -> dict[str, tuple[str, int]]:
    """'(a)' -> (notebook name, cell index) for every exercise cell of the solution notebooks."""
    out = {}
    for p in SOLUTIONS:
        for k, c in enumerate(nbformat.read(p, as_version=4).cells):
            m = gen.EXERCISE.match(c.source.split("\n")[0].strip()) if c.cell_type == "code" else None
            if m:
                out[m.group(1).split()[0]] = (p.name, k)
    return out


def test_eight_exercises_across_01_to_04_and_06_each_checked_and_passing():
    ex = _exercises()
    assert set(ex) >= {f"({x})" for x in "abcdefgh"}, sorted(ex)
    assert {nb[:2] for nb, _ in ex.values()} == {"01", "02", "03", "04", "06"}
    for tag, (name, k) in ex.items():
        cells = nbformat.read(ROOT / "notebooks" / name, as_version=4).cells
        check = cells[k + 1]
        assert check.cell_type == "code" and "check." in check.source, f"{name} {tag}: no check cell after it"
        text = "".join(o.get("text", "") for o in check.outputs)
        assert text.startswith(f"✓ {tag}"), f"{name} {tag}: the committed check output is {text[:80]!r}"
        before = "".join(c.source for c in cells[max(0, k - 3):k] if c.cell_type == "markdown")
        assert "<summary>Hint" in before and "⏱" in before, f"{name} {tag}: task text needs a time and a hint"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name[:2])
def test_every_think_question_has_an_answer_and_the_time_line_is_filled_in(path):
    nb = nbformat.read(path, as_version=4)
    md = _md(nb)
    for text in md:
        if re.search(r"\*\*Think[.!]?\*\*|^#+ Think", text, flags=re.M):
            assert "<summary>Answer" in text, f"{path.name}: a Think block without a collapsed answer:\n{text[:200]}"
    time_line = [t for t in md if "⏱ **Runs in**" in t]
    assert len(time_line) == 1, f"{path.name}: needs one '⏱ **Runs in** ...' line under the title"
    assert "?" not in time_line[0].split("⏱ **Runs in**")[1].split("\n")[0], "times not filled in"


def test_notebook_04_has_at_most_1500_words_of_visible_prose():
    nb = nbformat.read(ROOT / "notebooks" / "04_controls.ipynb", as_version=4)
    assert sum(visible_words(t) for t in _md(nb)) <= 1500


def test_the_stand_ins_disclosure_lives_in_one_place():
    """README's "Which model runs" explains the stand-in; the notebooks link there instead of repeating it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Which model runs: bert-base-uncased or the stand-in" in readme
    for p in SOLUTIONS:
        md = "\n".join(_md(nbformat.read(p, as_version=4)))
        assert len(re.findall(r"fine-tuned|MiniLM|6-layer BERT", md)) == 0, f"{p.name} repeats the disclosure"


# --- executing a student notebook --------------------------------------------------------------------

@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.name[:2])
def test_a_student_notebook_stops_at_its_first_stub_with_the_hint(path, tmp_path):
    """Run from the top on the stand-in, an exercise notebook raises at its first exercise's check, with that
    exercise's hint, and at nothing earlier."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(gen.TARGET / path.name, as_version=4)
    first = next(k for k, c in enumerate(nb.cells)
                 if c.cell_type == "code" and gen.EXERCISE.match(c.source.split("\n")[0]))
    hint = re.search(r'NotImplementedError\("(Hint: .{0,60})', nb.cells[first].source).group(1)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(gen.TARGET)}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    ran = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert ran[-1] == first + 1, f"stopped at cell {ran[-1]}, expected the check after cell {first}"
    shown = "".join("".join(o.get("traceback", [])) + o.get("evalue", "") for o in nb.cells[first + 1].outputs)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "is not done yet" in shown and hint[:40].replace('\\"', '"') in shown
    assert "helpers/check" not in shown                       # the student's lines, not the checker's
