"""What a folder of student notebooks holds: who submitted which notebook, and which exercises each covers.

    templates(folder=EXERCISES) -> {notebook stem: [Exercise]}   the student versions (notebooks/exercises/):
                                                                 each exercise with its hints and its check cell
    find(folder, templates) -> [Submission]                      every notebook under `folder`, read now
    exercises_of(nb_text) -> [(label, name, source)]             the '# exercise: (x) name' cells of a notebook

A student is the first folder under DIR (DIR/alice/01_find_neurons.ipynb -> "alice"); a notebook directly in
DIR is its own student, named by its file name without the notebook's name (alice_01_find_neurons.ipynb ->
"alice"). Every notebook is read into memory before any runs, so a notebook that deletes files in DIR cannot
change what the others are graded on; so are the other files of a student's own folder (their contrast file,
say: at most FILES_CAP bytes), which grading copies into the notebook's working folder.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "notebooks" / "exercises"
HEADER = re.compile(r"^# exercise: (\([a-z0-9]+\)) (\w+)", re.M)
STUB_HINT = re.compile(r'raise NotImplementedError\("Hint: ((?:[^"\\]|\\.)*)"\)')
DETAILS_HINT = re.compile(r"<details>\s*<summary>\s*Hint\s*</summary>(.*?)</details>", re.S | re.I)
CHECK_CALL = re.compile(r"\bcheck\.(\w+)\s*\(")
FILES_CAP = 20_000_000      # bytes of a student folder's other files copied into the working folder


@dataclass(frozen=True)
class Exercise:
    label: str          # "(b)"
    name: str           # "capture_mlp"
    notebook: str       # "01_find_neurons"
    hint: str = ""      # the stub's hint (the solution's ### HINT: lines)
    details: str = ""   # the collapsed hint above the exercise (<details><summary>Hint</summary>, markdown)
    check: str = ""     # the source of its check cell (`check.name(...)`), put back where a student removed it

    @property
    def title(self) -> str:
        return f"{self.label} {self.name}"


@dataclass
class Submission:
    student: str
    path: Path                   # where it was found
    notebook: str                # the exercise notebook it is a copy of (its stem), or its own stem
    text: str                    # the file, read before anything ran
    exercises: list[str] = field(default_factory=list)     # labels it should hold
    unreadable: str = ""         # why nbformat cannot read it ("" when it can)
    files: dict = field(default_factory=dict)              # {relative path: bytes}: the student folder's other files

    @property
    def key(self) -> str:
        return f"{self.student}/{self.path.name}"


def _cells(text: str) -> list[dict]:
    """The notebook's cells (raw JSON; [] when it is not a notebook)."""
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return []
    return cells if isinstance(cells, list) else []


def _source(cell: dict) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    return "".join(src) if isinstance(src, list) else str(src)


def exercises_of(text: str) -> list[tuple[str, str, str]]:
    """(label, name, cell source) of every code cell whose first line is '# exercise: (x) name'."""
    out = []
    for cell in _cells(text):
        src = _source(cell)
        m = HEADER.match(src)
        if cell.get("cell_type") == "code" and m:
            out.append((m.group(1), m.group(2), src))
    return out


def _unescape(hint: str) -> str:
    return re.sub(r"\\(.)", r"\1", hint)


def templates(folder: Path = EXERCISES) -> dict[str, list[Exercise]]:
    """{notebook stem: its exercises, in order}, from the student versions: each with the stub's hint, the
    collapsed hint of the markdown above it (since the previous exercise) and the source of its check cell
    (the first code cell after it that calls check.<name>)."""
    out = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        cells, found, since = _cells(path.read_text(encoding="utf-8")), [], 0
        for k, cell in enumerate(cells):
            src = _source(cell)
            m = HEADER.match(src)
            if cell.get("cell_type") != "code" or not m:
                continue
            label, name = m.group(1), m.group(2)
            hint = STUB_HINT.search(src)
            above = [DETAILS_HINT.findall(_source(c)) for c in cells[since:k] if c.get("cell_type") == "markdown"]
            details = [h.strip() for hs in above for h in hs]
            check = next((_source(c) for c in cells[k + 1:] if c.get("cell_type") == "code"
                          and name in CHECK_CALL.findall(_source(c))), "")
            found.append(Exercise(label, name, path.stem, _unescape(hint.group(1)) if hint else "",
                                  details[-1] if details else "", check))
            since = k + 1
        if found:
            out[path.stem] = found
    return out


def _template_of(stem: str, labels: list[str], tmpl: dict[str, list[Exercise]]) -> str | None:
    """The exercise notebook a student's file copies: by name (alice_01_find_neurons), else by its exercises."""
    named = [t for t in tmpl if t in stem]
    if named:
        return max(named, key=len)
    for t, exs in tmpl.items():
        if labels and set(labels) <= {e.label for e in exs}:
            return t
    return None


def _student(rel: Path, template: str | None) -> str:
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = rel.stem
    if template and template in stem:
        rest = stem.replace(template, "").strip(" _-.")
        return rest or stem
    return stem


def _skipped(rel: Path) -> bool:
    """Checkpoints and hidden folders are not submissions."""
    return any(p.startswith(".") or p == "__MACOSX" for p in rel.parts)


def _own_files(folder: Path, rel: Path) -> dict:
    """The other files of the student's own folder (DIR/alice/...), read now, notebooks and hidden ones left
    out, at most FILES_CAP bytes in all; {} for a notebook directly in DIR (its neighbours are other students')."""
    if len(rel.parts) < 2:
        return {}
    home, out, used = folder / rel.parts[0], {}, 0
    for p in sorted(home.rglob("*")):
        r = p.relative_to(home)
        if not p.is_file() or p.is_symlink() or p.suffix == ".ipynb" or _skipped(r):
            continue
        try:
            size = p.stat().st_size
            if used + size > FILES_CAP:
                continue
            out[r.as_posix()] = p.read_bytes()
            used += size
        except OSError:
            continue
    return out


def find(folder: Path, tmpl: dict[str, list[Exercise]]) -> list[Submission]:
    """Every notebook under `folder` (sorted by path), read now, with its student, its exercises and the other
    files of the student's folder."""
    folder = Path(folder)
    out = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if _skipped(rel) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            why = "" if isinstance(json.loads(text), dict) else "not a notebook (its JSON is not an object)"
        except (OSError, UnicodeDecodeError, ValueError) as e:
            text, why = "", f"cannot be read as a notebook ({type(e).__name__}: {str(e)[:120]})"
        labels = [label for label, _, _ in exercises_of(text)]
        template = _template_of(path.stem, labels, tmpl)
        expected = [e.label for e in tmpl.get(template, [])] if template else []
        labels = list(dict.fromkeys(expected + labels))
        out.append(Submission(_student(rel, template), path, template or path.stem, text, labels, why,
                              _own_files(folder, rel)))
    return out
