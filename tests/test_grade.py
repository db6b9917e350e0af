"""Grading a class (issue #27): `python -m helpers.grade` on a generated class whose table is known.

The class (helpers/grade/demo.py) is built from notebooks/exercises/ and the solutions in notebooks/: right
answers, one named mistake per exercise, an untouched notebook, a kernel that dies (os._exit), a loop that
never ends, a ZeroDivisionError, and a notebook that deletes and writes around its folder (its own working
folder, another student's submission in DIR, a file next to its folder) and prints 3 MB. Graded once (module
fixture) on exercises (a), (c) and (h) only, two at a time, 20 s per cell, then every assertion reads that run;
the report is opened in headless Chromium.
"""
from __future__ import annotations

import contextlib
import csv
import html
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from helpers.grade import __main__ as cli
from helpers.grade import demo, outcomes, pool, submissions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "site"))
import browser  # noqa: E402

ONLY = ("(a)", "(c)", "(h)")
CELL_TIMEOUT = 20


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("grade")
    folder, out, scratch = base / "class", base / "out", base / "scratch"
    scratch.mkdir()
    expected = {k: v for k, v in demo.write_class(folder).items() if k[2] in ONLY}
    victim = folder / "ben" / "01_find_neurons.ipynb"
    assert victim.exists()
    before, tempfile.tempdir = tempfile.tempdir, str(scratch)     # the grader's own folders go here
    printed = io.StringIO()
    t0 = time.monotonic()
    try:
        with contextlib.redirect_stdout(printed):
            rc = cli.main([str(folder), "--out", str(out), "--only", "a", "c", "h", "--jobs", "2",
                           "--timeout", str(CELL_TIMEOUT)])
    finally:
        tempfile.tempdir = before
    seconds = time.monotonic() - t0
    print(printed.getvalue())                                    # shown with -s: the progress and the summary
    print(f"graded in {seconds:.1f} s")
    return {"rc": rc, "folder": folder, "out": out, "scratch": scratch, "expected": expected,
            "printed": printed.getvalue(), "seconds": seconds, "victim": victim}


def _long(out: Path) -> dict:
    with open(out / "outcomes.csv", encoding="utf-8") as f:
        return {(r["student"], r["notebook"], r["exercise"]): r for r in csv.DictReader(f)}


def test_the_table_is_the_one_the_class_earned(run):
    assert run["rc"] == 0
    got = _long(run["out"])
    assert set(got) == set(run["expected"]), "one line per student and graded exercise"
    wrong = {k: (got[k]["status"], got[k]["key"]) for k, want in run["expected"].items()
             if (got[k]["status"], got[k]["key"]) != want}
    assert not wrong, f"graded differently from the generated class: {wrong}"


def test_the_wide_csv_writes_each_outcome_as_a_teacher_reads_it(run):
    with open(run["out"] / "grades.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["student", "(a) target_position", "(c) paired_test", "(h) own_contrast"]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert sorted(rows) == ["ada", "al", "ben", "cy", "dee", "eve"]
    assert rows["ada"] == ["passed", "passed", "passed"]
    assert rows["ben"][0].startswith("mistake forgot-cls: your index is one too small for every sentence")
    assert rows["ben"][1].startswith("mistake uncorrected: your mask is p < q")
    assert rows["ben"][2].startswith("mistake too-few-pairs: your file has 5 pair line(s)")
    assert rows["cy"] == ["not attempted", "not attempted", ""]          # no 06 handed in: an empty cell
    assert rows["dee"][0].startswith("crashed: the kernel died") and rows["dee"][1] == "passed"
    assert rows["eve"][0] == f"timed out: its check cell ran past the {CELL_TIMEOUT} s cell limit"
    assert rows["eve"][1].startswith("error: your function raised ZeroDivisionError: division by zero")


def test_progress_is_one_line_per_notebook_then_the_summary(run):
    lines = run["printed"].splitlines()
    done = [line for line in lines if re.match(r"\[\d/8\] \w+/0[16]_\w+\.ipynb: .* s elapsed\)$", line)]
    assert len(done) == 8, run["printed"]
    assert [int(re.match(r"\[(\d)", line).group(1)) for line in done] == list(range(1, 9))
    eve = next(line for line in done if line.startswith(tuple(f"[{k}/8] eve/" for k in range(1, 9))))
    assert "(a) timed out; (c) error" in eve and "1 restart(s)" in eve
    assert "(a) target_position (01_find_neurons): 2 of 6 passed" in run["printed"]
    assert "1 x forgot-cls: your index is one too small" in run["printed"]
    timing = list(csv.DictReader(open(run["out"] / "timing.csv", encoding="utf-8")))
    assert len(timing) == 8 and all(float(t["seconds"]) > 0 for t in timing)


def test_a_notebook_that_deletes_and_writes_around_it_spoils_nothing(run):
    folder, out, scratch = run["folder"], run["out"], run["scratch"]
    assert not run["victim"].exists(), "al's notebook did delete ben's submission while grading ran"
    got = _long(out)
    assert got["ben", "01_find_neurons", "(a)"]["key"] == "forgot-cls"    # graded from the copy read before
    assert got["al", "01_find_neurons", "(a)"]["status"] == "passed"      # its own folder gone, still graded
    assert not list(folder.rglob("al-was-here.txt")) and not list(out.rglob("al-was-here.txt"))
    assert list(scratch.iterdir()) == [], "the grader's working folders are all removed"
    executed = out / "executed" / "al__01_find_neurons.ipynb"
    assert executed.stat().st_size < 1_000_000, "the 3 MB it printed is cut"
    assert "[grader: output cut here" in executed.read_text(encoding="utf-8")


def test_no_kernel_outlives_the_grading(run):
    """The loop, the crashed kernel's replacement and every other kernel are gone (their KIT_CHECK_LOG pointed
    into the grader's scratch folder)."""
    left = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if str(run["scratch"]).encode() in env.read_bytes():
                left.append(env.parent.name)
        except OSError:
            continue
    assert not left, f"processes still running from the grading: {left}"


def test_the_report_in_chromium_shows_each_exercise_its_count_mistakes_and_hint(run):
    page = run["out"] / "report.html"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""", text, re.I), "self-contained: no URL out"
    assert "url(" not in text and "@import" not in text and "<script" not in text
    dom = browser.dump_dom(page.as_uri())
    sections = dict(re.findall(r'<section class="exercise" id="[^"]+" data-exercise="(\([a-z]\))">(.*?)</section>',
                               dom, re.S))
    assert sorted(sections) == list(ONLY)
    tmpl = submissions.templates()
    hints = {e.label: e.details for exs in tmpl.values() for e in exs}
    for label, (passed, graded, key) in {"(a)": (2, 6, "forgot-cls"), "(c)": (3, 6, "uncorrected"),
                                         "(h)": (1, 2, "too-few-pairs")}.items():
        sec = sections[label]
        assert f'data-passed="{passed}" data-graded="{graded}">{passed} of {graded}</span> passed' in sec
        assert f'<li data-key="{key}"><b class="key">{key}</b> <span class="n">1 student</span>' in sec
        assert "<svg" in sec and "<rect" in sec                                    # the charts are drawn
        shown = "".join(html.unescape(re.sub(r"<[^>]+>", "", sec)).split())           # spaces aside
        last = " ".join(re.sub(r"[`*]", "", hints[label]).split()[-6:])
        assert "".join(last.split()) in shown, f"{label}: the notebook's hint ({last!r}) is not on the page"
    a = sections["(a)"]
    for status, n in {"passed": 2, "mistake": 1, "not_done": 1, "crashed": 1, "timeout": 1}.items():
        assert re.search(rf'<li data-status="{status}">.*?<b>{n}</b></li>', a), status
    assert re.search(r"<b>error</b> × 1: your function raised ZeroDivisionError", sections["(c)"])
    grid = re.search(r'<table class="grid">.*?</table>', dom, re.S).group(0)
    assert grid.count("<tr>") == 7 and '<td class="s-timeout"' in grid and ">forgot-cls</td>" in grid


# --- pieces, without a kernel -----------------------------------------------------------------------------

def test_a_removed_check_cell_is_put_back_and_only_narrows_the_plan():
    tmpl = submissions.templates()
    nb = demo.fill("01_find_neurons", demo.solutions("01_find_neurons"))
    nb.cells = [c for c in nb.cells if "check.paired_test(" not in c.source]
    sub = submissions.Submission("x", Path("x/01_find_neurons.ipynb"), "01_find_neurons", nbformat.writes(nb),
                                 ["(a)", "(b)", "(c)"])
    prep = pool.prepare(sub, tmpl)
    assert prep.added == ["(c)"]
    checks = {r.label: prep.nb.cells[r.index].source for r in prep.roles if r.kind == "check"}
    assert checks["(c)"] == "check.paired_test(paired_test)"
    narrow = pool.prepare(sub, tmpl, only=("(a)",))
    assert {r.label for r in narrow.roles if r.kind in ("exercise", "check")} == {"(a)"}
    assert len(narrow.plans["needed"]) < len(prep.plans["needed"])


def test_outcomes_from_log_lines_and_from_cells():
    tmpl = submissions.templates()
    sub = submissions.Submission("x", Path("x/01_find_neurons.ipynb"), "01_find_neurons", "", ["(a)", "(b)", "(c)"])
    roles = [pool.cellplan.Role(11, "exercise", "(a)"), pool.cellplan.Role(12, "check", "(a)"),
             pool.cellplan.Role(16, "exercise", "(b)"), pool.cellplan.Role(17, "check", "(b)"),
             pool.cellplan.Role(23, "exercise", "(c)"), pool.cellplan.Role(24, "check", "(c)")]
    log = [{"exercise": "(a)", "name": "target_position", "status": "mistake", "key": "cls-twice",
            "text": "your index is one too large"}]
    result = {"cells": {"11": {"status": "ok"}, "12": {"status": "ok"}, "16": {"status": "error",
              "error": "SyntaxError: invalid syntax (3)"}, "17": {"status": "error", "error": "NameError: x"},
              "23": {"status": "ok"}, "24": {"status": "died"}}, "notes": []}
    g = pool.Graded(sub, roles, result, log, 1.0)
    got = {o.label: (o.status, o.key, o.text) for o in outcomes.outcomes(g, tmpl, 20)}
    assert got["(a)"] == ("mistake", "cls-twice", "your index is one too large")
    assert got["(b)"] == ("error", "", "SyntaxError: invalid syntax (3) (in the exercise cell)")
    assert got["(c)"][0] == "crashed"
    with pytest.raises(SystemExit, match=r"no such exercise; choose from a \(target_position\)"):
        cli._labels(["zz"], tmpl)
    assert cli._labels(["a", "(c)", "own_contrast"], tmpl) == ("(a)", "(c)", "(h)")


def test_chromium_is_there():
    """The browser tests need a real browser: `make install` installs it; missing, this fails (no skip)."""
    assert Path(browser.chromium()).exists()
