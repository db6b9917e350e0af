"""Which cells of a student notebook grading runs, and what each is for.

    roles(nb, names) -> [Role]       per code cell: exercise / check / setup / other, and its exercise label
    plan(nb, roles, mode) -> [int]   the cells to run, in order: "all" of them, or those the checks "need"

"needed": each exercise cell and each check cell, the first code cell (the setup that makes `import helpers`
work), and, transitively, the nearest earlier cell that defines a name one of them uses (found with `symtable`,
after IPython turns magics into Python). Notebook 04's checks need its imports, not its 70 s of lesion tests.
A name the analysis cannot see (exec, globals(), a star import) shows up as a NameError when the cells run:
the grader then runs that notebook again with every cell (helpers.grade.kernel).
"""
from __future__ import annotations

import re
import symtable
from dataclasses import dataclass, field

from IPython.core.inputtransformer2 import TransformerManager

from .submissions import HEADER

CHECK_CALL = re.compile(r"\bcheck\.(\w+)\s*\(")
MODES = ("needed", "all")


@dataclass
class Role:
    index: int                    # the cell's index in nb.cells
    kind: str                     # "exercise", "check", "setup" or "other"
    label: str | None = None      # the exercise the cell belongs to ("(b)"), for exercise and check cells
    defines: set = field(default_factory=set)
    uses: set = field(default_factory=set)


def _symbols(source: str) -> tuple[set, set]:
    """(names the cell binds at top level, names it reads from the notebook's globals), function bodies
    included (they run later, when the check calls them); magics are turned into Python first. A cell that
    does not parse defines and reads nothing."""
    try:
        top = symtable.symtable(TransformerManager().transform_cell(source), "<cell>", "exec")
    except (SyntaxError, ValueError, IndexError):
        return set(), set()
    defines = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    uses, todo = {s.get_name() for s in top.get_symbols() if s.is_referenced()}, list(top.get_children())
    while todo:
        t = todo.pop()
        uses.update(s.get_name() for s in t.get_symbols() if s.is_global() and s.is_referenced())
        todo.extend(t.get_children())
    return defines, uses


def roles(nb, names: dict[str, str]) -> list[Role]:
    """A Role per code cell (`names`: exercise name -> label, for the check calls)."""
    out, first = [], True
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        head = HEADER.match(cell.source.lstrip())
        calls = [names[n] for n in CHECK_CALL.findall(cell.source) if n in names]
        if head:
            role = Role(k, "exercise", head.group(1))
        elif calls:
            role = Role(k, "check", calls[-1])
        else:
            role = Role(k, "setup" if first else "other")
        first = False
        role.defines, role.uses = _symbols(cell.source)
        out.append(role)
    return out


def plan(rs: list[Role], mode: str) -> list[int]:
    """The indices of the cells to run, in notebook order (mode: one of MODES)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "all":
        return [r.index for r in rs]
    keep = {k for k, r in enumerate(rs) if r.kind != "other"}
    todo = list(keep)
    while todo:
        k = todo.pop()
        for name in rs[k].uses:
            definer = next((j for j in range(k - 1, -1, -1) if name in rs[j].defines), None)
            if definer is not None and definer not in keep:
                keep.add(definer)
                todo.append(definer)
    return [rs[k].index for k in sorted(keep)]
