"""`python -m helpers.grade DIR [--out FOLDER] [--timeout S] [--jobs N] ...`: grade a folder of student notebooks.

Writes FOLDER (default build/grade): grades.csv (a row per student, a column per exercise), outcomes.csv (one
line per student and exercise: status, key, text), timing.csv (per notebook: seconds, restarts, notes),
report.html (the class report) and executed/ (each notebook as it ran). Prints a line per notebook as it
ends, then the class summary. The checks run on the offline stand-in (KIT_MODEL=stand-in, HF_HUB_OFFLINE=1).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from . import outcomes as oc
from . import page, pool, submissions
from .cells import MODES


def _labels(only: list[str] | None, tmpl: dict) -> tuple:
    """The labels --only names ("a", "(a)" or "target_position"); SystemExit naming the valid choices."""
    if not only:
        return ()
    known = {e.label: e for exs in tmpl.values() for e in exs}
    out = []
    for word in only:
        for w in filter(None, (x.strip() for x in word.split(","))):
            label = w if w.startswith("(") else f"({w})"
            if label not in known:
                label = next((e.label for e in known.values() if e.name == w), None)
            if label is None:
                raise SystemExit(f"--only {w!r}: no such exercise; choose from "
                                 + ", ".join(f"{e.label[1:-1]} ({e.name})" for e in known.values()))
            out.append(label)
    return tuple(dict.fromkeys(out))


def _line(g: pool.Graded, outs: list[oc.Outcome], done: int, total: int, t0: float) -> str:
    words = []
    for o in outs:
        w = f"mistake {o.key}" if o.status == "mistake" else oc.WORDS[o.status]
        words.append(f"{o.label} {w}")
    extra = f", {g.result['restarts']} restart(s)" if g.result and g.result.get("restarts") else ""
    return (f"[{done:>{len(str(total))}}/{total}] {g.sub.key}: {'; '.join(words) or 'no exercise'} "
            f"({g.seconds:.1f} s{extra}; {time.monotonic() - t0:.0f} s elapsed)")


def write(out: Path, graded: list, found: list[oc.Outcome], tmpl: dict, facts: str) -> None:
    """The tables, the timing of each notebook and the class report, into `out`."""
    oc.write_csv(out / "grades.csv", found, tmpl)
    oc.write_long_csv(out / "outcomes.csv", found)
    with open(out / "timing.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", "notebook", "seconds", "restarts", "cells", "notes"])
        for g in graded:
            r = g.result or {}
            w.writerow([g.sub.student, g.sub.path.name, g.sub.notebook, g.seconds, r.get("restarts", ""),
                        r.get("mode", ""), "; ".join(r.get("notes", []) + ([g.lost] if g.lost else []))])
    (out / "report.html").write_text(page.render(found, tmpl, "Class report", facts), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.grade", description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="the students' notebooks: DIR/student/NN_name.ipynb (or "
                                             "DIR/student_NN_name.ipynb)")
    p.add_argument("--out", type=Path, default=Path("build/grade"), help="where the report goes (default build/grade)")
    p.add_argument("--timeout", type=float, default=120, help="seconds a cell may run (default 120)")
    p.add_argument("--notebook-timeout", type=float, default=None,
                   help="seconds a notebook may run, restarts included (default: 6 x --timeout, at least 600)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded at a time (default 1; each is a kernel)")
    p.add_argument("--only", nargs="+", metavar="EXERCISE", help="grade these exercises only (a, (a) or its name)")
    p.add_argument("--cells", choices=MODES, default="needed",
                   help="needed (default): the exercises, their checks and the cells they use; all: every cell")
    p.add_argument("--cold", action="store_true", help="start every kernel from a fresh interpreter (slower)")
    p.add_argument("--exercises", type=Path, default=submissions.EXERCISES,
                   help="the exercise notebooks the students started from (default notebooks/exercises)")
    a = p.parse_args(argv)
    if not a.folder.is_dir():
        p.error(f"{a.folder} is not a folder")
    tmpl = submissions.templates(a.exercises)
    if not tmpl:
        p.error(f"no exercise notebooks in {a.exercises}")
    only = _labels(a.only, tmpl)
    subs = submissions.find(a.folder, tmpl)
    if only:
        for s in subs:
            s.exercises = [label for label in s.exercises if label in only]
    subs = [s for s in subs if s.exercises or s.unreadable]
    if not subs:
        p.error(f"no student notebook with an exercise under {a.folder}")
    a.out.mkdir(parents=True, exist_ok=True)
    opts = pool.Options(timeout=a.timeout, jobs=a.jobs, mode=a.cells, warm=not a.cold, only=only,
                        notebook_timeout=a.notebook_timeout or max(600.0, 6 * a.timeout), executed=a.out / "executed")
    per_nb = Counter(s.notebook for s in subs)
    print(f"helpers.grade: {len(subs)} notebooks of {len({s.student for s in subs})} students "
          f"({', '.join(f'{k}: {n}' for k, n in sorted(per_nb.items()))}), {opts.jobs} at a time, "
          f"{a.timeout:g} s per cell, {opts.notebook_timeout:g} s per notebook"
          + ("" if opts.warm else ", cold kernels"), flush=True)
    t0 = time.monotonic()
    found: list[oc.Outcome] = []

    def progress(g, done, total):
        outs = oc.outcomes(g, tmpl, opts.timeout, opts.notebook_timeout)
        found.extend(outs)
        print(_line(g, outs, done, total, t0), flush=True)

    graded = pool.grade_all(subs, tmpl, opts, progress)
    wall = time.monotonic() - t0
    write(a.out, graded, found, tmpl, f"{len({s.student for s in subs})} students, {len(subs)} notebooks from "
          f"{a.folder.name}/ · graded {datetime.now():%Y-%m-%d %H:%M} on the {opts.model} model in {wall:.0f} s")
    print(f"\n{page.summary_text(page.summary(found, tmpl))}\n")
    print(f"graded {len(subs)} notebooks in {wall:.0f} s; wrote {a.out / 'report.html'}, grades.csv, "
          f"outcomes.csv, timing.csv, executed/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
