"""What grading found, one Outcome per student and exercise, and the CSV tables of it.

    outcomes(graded, tmpl, opts) -> [Outcome]     a notebook's outcomes, from its checks' log and its cells
    rows(all_outcomes, tmpl) -> (columns, rows)   the student x exercise table (every exercise graded)
    write_csv(path, ...), write_long_csv(path, ...)

Each outcome comes from the check's own JSON line ($KIT_CHECK_LOG, the last one for its exercise) when the
check reported; otherwise from what happened to the exercise's cells: a cell past its time limit (timed out),
a kernel that died (crashed), an error in the exercise or check cell (its one line), cells never run.

STATUSES (in the order the report shows them) and how the table writes each:
    passed         "passed"
    mistake        "mistake <key>: <text>"     the one usual mistake the answer equals (helpers.check)
    differs        "differs: <text>"           wrong, and none (or several) of the usual mistakes
    error          "error: <one line>"         the student's code raised (or the notebook cannot be read)
    not_done       "not attempted"             the stub still raises, or there is no exercise cell
    timeout        "timed out: <what>"         a cell, or the whole notebook, ran past its limit
    crashed        "crashed: <what>"           the kernel died (os._exit, a segfault, out of memory)
    cannot_tell    "cannot tell: <text>"       right, but so would a usual mistake be on this model
    check_failed   "check failed: <text>"      the check itself broke (says nothing about the answer)
    not_run        "not run: <why>"            grading stopped before this exercise (too many restarts)
    not_submitted  ""                          the student handed in no copy of this exercise's notebook
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("passed", "mistake", "differs", "error", "not_done", "timeout", "crashed", "cannot_tell",
            "check_failed", "not_run", "not_submitted")
WORDS = {"passed": "passed", "mistake": "mistake", "differs": "differs", "error": "error",
         "not_done": "not attempted", "timeout": "timed out", "crashed": "crashed", "cannot_tell": "cannot tell",
         "check_failed": "check failed", "not_run": "not run", "not_submitted": "not submitted"}


@dataclass
class Outcome:
    student: str
    file: str              # the submission's path relative to DIR's student ("alice/01_find_neurons.ipynb")
    notebook: str          # the exercise notebook ("01_find_neurons")
    label: str             # "(a)"
    name: str              # "target_position"
    status: str            # one of STATUSES
    key: str = ""          # the mistake's key (status "mistake")
    text: str = ""         # the check's line, the error's line, or what happened

    @property
    def exercise(self) -> str:
        return f"{self.label} {self.name}"

    def cell(self) -> str:
        """How the student x exercise table writes it (see the module docstring)."""
        if self.status in ("passed", "not_done", "not_submitted"):
            return "" if self.status == "not_submitted" else WORDS[self.status]
        head = f"mistake {self.key}" if self.status == "mistake" else WORDS[self.status]
        return f"{head}: {self.text}" if self.text else head


def _strip(text: str, label: str, name: str) -> str:
    """The check's line without its "(a) target_position: " prefix (the table's column says it)."""
    text = " ".join(str(text).split())
    for prefix in (f"{label} {name}: ", f"⚠ {label} {name}: ", f"✗ {label} {name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _from_log(rec: dict, base: dict) -> Outcome:
    status = rec.get("status")
    text = _strip(rec.get("text") or "", base["label"], base["name"])
    if status == "not_done":
        return Outcome(**base, status="not_done")
    if status == "mistake" and rec.get("key"):
        return Outcome(**base, status="mistake", key=str(rec["key"]), text=text)
    if status in ("mistake", "differs"):
        return Outcome(**base, status="differs", text=text)
    if status in STATUSES:
        return Outcome(**base, status=status, text="" if status == "passed" else text)
    return Outcome(**base, status="check_failed", text=f"unknown check status {status!r}: {text}")


def _from_cells(g, label: str, base: dict, timeout: float, notebook_timeout: float) -> Outcome:
    """No check reported for `label`: what its exercise and check cells did."""
    cells = (g.result or {}).get("cells", {})
    mine = [r for r in g.roles if r.label == label and r.kind in ("exercise", "check")]
    if not any(r.kind == "exercise" for r in mine) and not any(r.kind == "check" for r in mine):
        return Outcome(**base, status="not_done", text=f"no '# exercise: {label} {base['name']}' cell")
    events = [(r, cells.get(str(r.index))) for r in mine]
    for r, ev in events:
        if ev and ev["status"] == "timeout":
            return Outcome(**base, status="timeout", text=f"its {r.kind} cell ran past the {timeout:g} s cell limit")
        if ev and ev["status"] == "died":
            return Outcome(**base, status="crashed", text=f"the kernel died in its {r.kind} cell (os._exit, a "
                                                          f"segfault or out of memory)")
    for r, ev in events:
        if ev and ev["status"] == "error":
            return Outcome(**base, status="error", text=ev.get("error", "") + (
                f" (in the exercise cell)" if r.kind == "exercise" else ""))
    if g.lost == "timeout":
        return Outcome(**base, status="timeout", text=f"the notebook ran past its {notebook_timeout:g} s limit "
                                                      f"before this check reported")
    if g.lost:
        return Outcome(**base, status="error", text=g.lost + (f" ({g.output.strip().splitlines()[-1][:200]})"
                                                              if g.output.strip() else ""))
    if any(ev and ev["status"] == "not_run" for _, ev in events) or not any(ev for _, ev in events):
        notes = "; ".join((g.result or {}).get("notes", []))
        return Outcome(**base, status="not_run", text=notes or "its cells did not run")
    return Outcome(**base, status="check_failed", text="the check cell ran but no check reported (was its "
                                                       "`check.` call changed?)")


def outcomes(g, tmpl: dict, timeout: float = 120, notebook_timeout: float = 900) -> list[Outcome]:
    """One Outcome per exercise of the notebook `g` (pool.Graded) should hold, in its order."""
    names = {e.label: e.name for e in tmpl.get(g.sub.notebook, [])}
    for r in g.roles:
        names.setdefault(r.label, r.label) if r.label else None
    rel = f"{g.sub.student}/{g.sub.path.name}"
    out = []
    for label in g.sub.exercises:
        base = {"student": g.sub.student, "file": rel, "notebook": g.sub.notebook, "label": label,
                "name": names.get(label, "")}
        if g.sub.unreadable or (g.result is None and not g.lost and not g.log):
            out.append(Outcome(**base, status="error", text=g.sub.unreadable or "the notebook cannot be read as a "
                                                                              "notebook (nbformat refused it)"))
            continue
        recs = [rec for rec in g.log if rec.get("exercise") == label]
        out.append(_from_log(recs[-1], base) if recs else _from_cells(g, label, base, timeout, notebook_timeout))
    return out


def exercise_columns(tmpl: dict, seen: list[Outcome]) -> list[tuple[str, str, str]]:
    """(notebook, label, name) of every exercise graded, in the templates' order (then any other)."""
    cols = [(nb, e.label, e.name) for nb, exs in sorted(tmpl.items()) for e in exs]
    graded = {(o.notebook, o.label) for o in seen}
    cols = [c for c in cols if (c[0], c[1]) in graded]
    for o in seen:
        if (o.notebook, o.label, o.name) not in cols and (o.notebook, o.label) not in {(c[0], c[1]) for c in cols}:
            cols.append((o.notebook, o.label, o.name))
    return cols


def rows(all_outcomes: list[Outcome], tmpl: dict) -> tuple[list[tuple], list[tuple[str, dict]]]:
    """(columns, [(student, {(notebook, label): Outcome})]): one row per student, sorted; a student who handed
    in two copies of one notebook gets one row per copy ("alice (01_find_neurons (1).ipynb)")."""
    cols = exercise_columns(tmpl, all_outcomes)
    files = {}
    for o in all_outcomes:
        files.setdefault((o.student, o.notebook), []).append(o.file)
    table: dict[str, dict] = {}
    for o in all_outcomes:
        copies = sorted(set(files[o.student, o.notebook]))
        who = o.student if len(copies) == 1 else f"{o.student} ({o.file.split('/', 1)[-1]})"
        table.setdefault(who, {})[(o.notebook, o.label)] = o
    return cols, sorted(table.items())


def write_csv(path: Path, all_outcomes: list[Outcome], tmpl: dict) -> None:
    """The student x exercise table: a row per student, a column per exercise ("(a) target_position")."""
    cols, table = rows(all_outcomes, tmpl)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [f"{label} {name}" for _, label, name in cols])
        for who, got in table:
            w.writerow([who] + [got[(nb, label)].cell() if (nb, label) in got else "" for nb, label, _ in cols])


def write_long_csv(path: Path, all_outcomes: list[Outcome]) -> None:
    """One line per student and exercise, its parts in columns (for a spreadsheet's filters)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "file", "notebook", "exercise", "name", "status", "key", "text"])
        for o in sorted(all_outcomes, key=lambda o: (o.student, o.file, o.notebook, o.label)):
            w.writerow([o.student, o.file, o.notebook, o.label, o.name, o.status, o.key, o.text])
