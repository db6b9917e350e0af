"""helpers.check for notebook 04: (f) random_null and (g) heldout. The reference solutions pass; each
usual mistake, filled in on purpose, makes the check raise Mistake with a sentence that names it. No model."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import fdrcorrection

from helpers import check
from helpers.check import Mistake, NotDone


# --- (f) random_sets + permutation_p ------------------------------------------------------------
def random_sets(width, size, n, seed=0):
    rng = np.random.default_rng(seed)
    sets = np.zeros((n, width), dtype=bool)
    for row in sets:
        row[rng.choice(width, size=size, replace=False)] = True
    return sets


def permutation_p(observed, null):
    null = np.asarray(null)
    return (1 + np.sum(null >= observed)) / (1 + null.size)


def with_replacement(width, size, n, seed=0):
    rng = np.random.default_rng(seed)
    sets = np.zeros((n, width), dtype=bool)
    for row in sets:
        row[rng.integers(0, width, size=size)] = True        # a neuron drawn twice counts once
    return sets


def same_set_every_row(width, size, n, seed=0):
    sets = np.zeros((n, width), dtype=bool)
    for row in sets:
        row[np.random.default_rng(seed).choice(width, size=size, replace=False)] = True
    return sets


def unseeded(width, size, n, seed=0):
    sets = np.zeros((n, width), dtype=bool)
    for row in sets:
        row[np.random.choice(width, size=size, replace=False)] = True
    return sets


def indices_not_mask(width, size, n, seed=0):
    return np.stack([np.random.default_rng(seed + i).choice(width, size, replace=False) for i in range(n)])


P_MISTAKES = {
    "no +1": (lambda o, null: np.sum(np.asarray(null) >= o) / len(null), "your p has no +1"),
    "strict >": (lambda o, null: (1 + np.sum(np.asarray(null) > o)) / (1 + len(null)), "use >="),
    "two-sided": (lambda o, null: (1 + np.sum(np.abs(null) >= abs(o))) / (1 + len(null)), "two-sided"),
    "below": (lambda o, null: (1 + np.sum(np.asarray(null) <= o)) / (1 + len(null)), "did WORSE"),
    "+1 on top only": (lambda o, null: (1 + np.sum(np.asarray(null) >= o)) / len(null), "on top but not below"),
    "+1 below only": (lambda o, null: np.sum(np.asarray(null) >= o) / (1 + len(null)), "below but not on top"),
}


def test_random_null_reference_passes(capsys):
    check.random_null(random_sets, permutation_p)
    assert capsys.readouterr().out.startswith("✓ (f) random_null: random sets of exactly 7")


@pytest.mark.parametrize("name", list(P_MISTAKES))
def test_random_null_names_the_p_mistake(name):
    fn, phrase = P_MISTAKES[name]
    with pytest.raises(Mistake, match=re.escape(phrase)) as e:
        check.random_null(random_sets, fn)
    assert str(e.value).startswith("✗ (f) random_null: ")


@pytest.mark.parametrize("fn,phrase", [(with_replacement, "WITH replacement"),
                                       (same_set_every_row, "all the same set"),
                                       (unseeded, "the same seed gave different sets"),
                                       (indices_not_mask, "returned shape")])
def test_random_null_names_the_set_mistake(fn, phrase):
    with pytest.raises(Mistake, match=re.escape(phrase)):
        check.random_null(fn, permutation_p)


def test_random_null_stub_shows_the_hint_and_errors_show_the_students_line():
    def stub(width, size, n, seed=0):
        raise NotImplementedError("Hint: one rng, rng.choice(width, size, replace=False) per row")
    with pytest.raises(NotDone, match="replace=False"):
        check.random_null(stub, permutation_p)

    def broken(observed, null):
        return observed / undefined_name  # noqa: F821
    with pytest.raises(check.StudentError) as e:
        check.random_null(random_sets, broken)
    assert "undefined_name" in "\n".join(e.value._render_traceback_())


# --- (g) heldout -------------------------------------------------------------------------------
def _her(acts_a, acts_b, rows, q=0.05):
    r = stats.ttest_rel(acts_a[rows], acts_b[rows], axis=0)
    return fdrcorrection(r.pvalue, alpha=q)[0] & (r.statistic < 0)


def heldout(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    return lesion_drop(_her(acts_a, acts_b, train, q), test)


def selected_on_all(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    return lesion_drop(_her(acts_a, acts_b, np.arange(len(acts_a)), q), test)


def lesioned_on_train(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    return lesion_drop(_her(acts_a, acts_b, train, q), train)


def lesioned_on_all(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    return lesion_drop(_her(acts_a, acts_b, train, q), np.arange(len(acts_a)))


def selected_on_test(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    return lesion_drop(_her(acts_a, acts_b, test, q), test)


def wrong_direction(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    r = stats.ttest_rel(acts_a[train], acts_b[train], axis=0)
    return lesion_drop(fdrcorrection(r.pvalue, alpha=q)[0] & (r.statistic > 0), test)


def both_directions(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    r = stats.ttest_rel(acts_a[train], acts_b[train], axis=0)
    return lesion_drop(fdrcorrection(r.pvalue, alpha=q)[0], test)


def uncorrected(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    r = stats.ttest_rel(acts_a[train], acts_b[train], axis=0)
    return lesion_drop((r.pvalue < q) & (r.statistic < 0), test)


def unpaired(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    r = stats.ttest_ind(acts_a[train], acts_b[train], axis=0)
    return lesion_drop(fdrcorrection(r.pvalue, alpha=q)[0] & (r.statistic < 0), test)


def no_return(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    lesion_drop(_her(acts_a, acts_b, train, q), test)


def test_heldout_reference_passes(capsys):
    check.heldout(heldout)
    assert capsys.readouterr().out.startswith("✓ (g) heldout: ")
    # neuron indices instead of a mask are fine too
    check.heldout(lambda a, b, tr, te, drop, q=0.05: drop(np.flatnonzero(_her(a, b, tr, q)), te))
    assert capsys.readouterr().out.startswith("✓ (g) heldout: ")


@pytest.mark.parametrize("fn,phrase", [
    (selected_on_all, "chose the neurons on ALL pairs"),
    (lesioned_on_train, "lesioned at the TRAINING pairs"),
    (lesioned_on_all, "lesioned at ALL pairs"),
    (selected_on_test, "on the held-out pairs themselves"),
    (wrong_direction, "the wrong direction"),
    (both_directions, "both directions"),
    (uncorrected, "p < q, uncorrected"),
    (unpaired, "unpaired t-test"),
    (no_return, "return what lesion_drop"),
])
def test_heldout_names_the_mistake(fn, phrase):
    with pytest.raises(Mistake, match=re.escape(phrase)) as e:
        check.heldout(fn)
    assert str(e.value).startswith("✗ (g) heldout: ")


def test_heldout_never_lesioned():
    with pytest.raises(Mistake, match="never called lesion_drop"):
        check.heldout(lambda a, b, tr, te, drop, q=0.05: 0.0)
