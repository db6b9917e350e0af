"""Mutation testing of the exercise checks (scripts/mutation.py): every mutant of every reference solution
fails its check or is shown equivalent, no check crashes on one, and the harness itself can fail."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import mutation as M  # noqa: E402


@pytest.fixture(scope="module")
def models():
    """The checks judge on a 5-layer random BERT here (20x faster than the stand-in; `make mutation` uses the
    stand-in), equivalence is shown on a second, 4-layer one."""
    return M.load_models("random")


def test_every_mutant_is_killed_or_equivalent(models, capsys):
    results = M.score(sorted(M.EXERCISES), models)
    with capsys.disabled():
        print("\n" + M.table(results))
    for label, ms in results.items():
        bad = [f"({label}) line {m.line} {m.change}: {m.verdict} ({m.detail})" for m in ms
               if m.verdict not in ("killed", "equivalent")]
        assert not bad, "\n".join(bad)
        killed = sum(m.verdict == "killed" for m in ms)
        assert killed >= 0.85 * len(ms), f"({label}): only {killed} of {len(ms)} mutants killed"


def test_the_operators_reach_every_exercise():
    """Each exercise gets mutants, and of every family of operator somewhere (so a score cannot be 100% by
    having nothing to kill)."""
    changes = {label: [m.change for m in M.mutants(label)] for label in M.EXERCISES}
    assert all(changes[label] for label in M.EXERCISES)
    every = " | ".join(c for cs in changes.values() for c in cs)
    for family in ("variable ", " -> .", "Lt -> ", "Add -> ", "-> 1", "statement removed", "return None",
                   "swapped", "dropped", "loop over nothing", "with removed", "try/finally flattened",
                   "subscript removed", "() removed", "string "):
        assert family in every, f"no mutant of the kind {family!r}"


def test_a_check_that_passes_everything_scores_below_100(models, monkeypatch):
    """The harness has teeth: a (c) check that prints a tick whatever it is given leaves survivors."""
    monkeypatch.setitem(M.EXERCISES, "c", ("01_find_neurons.ipynb", lambda ns, m, t: print("✓ (c) paired_test: ok")))
    results = M.score(["c"], models)
    assert sum(m.verdict == "survived" for m in results["c"]) >= 10


def test_a_mutant_is_equivalent_only_when_its_results_are_the_same(models):
    """The trace comparison: the reference is equivalent to itself, and a changed value is not."""
    src, _ = M.exercise_cell("g")
    _, _, a = M.judge("g", src, *models.main)
    _, _, b = M.judge("g", src, *models.main)
    assert a and M.same_trace(a, b)
    changed = [(kind, (v + 1e-9 if isinstance(v, float) else v), keys) for kind, v, keys in b]
    assert not M.same_trace(a, changed)
