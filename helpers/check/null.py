"""Checker for notebook 04's exercise (f): a random-neuron null and its permutation p.

    random_sets      the shape or dtype, sets drawn with replacement (too small) or of the wrong size, one set
                     repeated, a neuron never drawn or neurons drawn unevenly, the seed ignored (a fixed seed or
                     none: three seeds and a repeat are tried)
    permutation_p    no +1, > instead of >=, the wrong tail, two-sided, +1 on one side only, a normal
                     approximation; anything but one number

"Drawn unevenly" is judged with exact binomial bounds on each neuron's count, and "not random" (neighbouring
neurons together too often or too rarely: a random start and a consecutive block) with Hoeffding's bound on
the count of neighbouring pairs; each test's false-alarm rate, for a right answer, is below 1e-8 per call,
so below 1e-7 per check (tests/test_check_trust.py computes it).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats as st

from ._guard import judging
from ._report import Mistake, confusable, diagnose, one_number, passed, tolerance

# (observed, null): a tie with the null, an observation above every draw, one below every draw, a tie at the top
P_CASES = [(0.5, np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.7, 0.3, 0.5, 0.0, 0.6])),
           (2.0, np.array([0.1, 0.4, 0.3, 0.9, 1.2, 0.2, 0.8, 0.5, 0.6, 0.7, 1.1, 0.0])),
           (-1.0, np.array([0.1, 0.4, -0.3, 0.9, 1.2])),
           (1.5, np.array([1.5, -2.0, 0.3, 1.5, -0.4, 0.8, 1.1]))]
SETS = [(50, 7, 3000, 0), (50, 7, 400, 1), (50, 7, 400, 2024), (12, 3, 300, 5)]   # width, size, n, seed
FALSE_ALARM = 1e-8           # per call of random_sets and test (evenness, neighbours); the check makes 5 calls


def _p_variants() -> dict:
    """{key: (text, [n_cases])} of the usual wrong permutation p-values."""
    def col(f):
        return np.array([f(o, nl, nl.size) for o, nl in P_CASES])
    return {
        "no-plus-one": ("your p has no +1: count/N can be 0, a claim that no random set could ever do as well, which "
                        "a finite null cannot support. Use (1 + #{null >= observed}) / (1 + N) (the observed set "
                        "counts as one draw)", col(lambda o, nl, n: np.sum(nl >= o) / n)),
        "strict": ("you counted null > observed; ties count against the chosen set: use >=",
                   col(lambda o, nl, n: (1 + np.sum(nl > o)) / (1 + n))),
        "wrong-tail": ("your p counts the random sets that did WORSE (null <= observed): p is the share that did at "
                       "least as well (null >= observed)", col(lambda o, nl, n: (1 + np.sum(nl <= o)) / (1 + n))),
        "two-sided": ("your p is two-sided (|null| >= |observed|); the question is one-sided: do the chosen neurons "
                      "hurt MORE than random ones?", col(lambda o, nl, n: (1 + np.sum(np.abs(nl) >= abs(o))) / (1 + n))),
        "plus-one-top": ("you added 1 on top but not below: (1 + count) / N can exceed 1; the observed set is one "
                         "more draw, so N grows by 1 too: (1 + count) / (1 + N)",
                         col(lambda o, nl, n: (1 + np.sum(nl >= o)) / n)),
        "plus-one-bottom": ("you added 1 below but not on top: count / (1 + N) can still be 0; use (1 + count) / "
                            "(1 + N)", col(lambda o, nl, n: np.sum(nl >= o) / (1 + n))),
        "normal-approx": ("that is a normal approximation from the null's mean and sd; count the draws instead",
                          col(lambda o, nl, n: float(st.norm.sf((o - nl.mean()) / nl.std(ddof=1))))),
    }


def reference_p() -> np.ndarray:
    return np.array([(1 + np.sum(nl >= o)) / (1 + nl.size) for o, nl in P_CASES])


def expected_distinct(width: int, size: int, n: int) -> float:
    """How many different sets n fair draws give on average: C (1 - (1 - 1/C)^n), C = comb(width, size)."""
    c = math.comb(width, size)
    return c * -math.expm1(n * math.log1p(-1 / c)) if c > 1 else 1.0


def even_bounds(width: int, size: int, n: int, alpha: float = FALSE_ALARM) -> tuple[int, int]:
    """(lo, hi): a right random_sets puts each neuron in lo..hi of n sets except with probability < alpha in
    all (each count is Binomial(n, size / width); a union bound over the width neurons)."""
    p, a = size / width, alpha / (2 * width)
    return int(st.binom.ppf(a, n, p)), int(st.binom.isf(a, n, p)) + 1


def neighbour_bounds(width: int, size: int, n: int, alpha: float = FALSE_ALARM) -> tuple[float, float]:
    """(lo, hi) for the number of (row, i) with neurons i and i + 1 both in the row: a fair draw gives
    n size (size - 1) / width on average, each row adds 0..size - 1, so Hoeffding's inequality puts it outside
    lo..hi with probability < alpha."""
    mean = n * size * (size - 1) / width
    t = (size - 1) * math.sqrt(n * math.log(2 / alpha) / 2)
    return mean - t, mean + t


def _as_sets(ex: str, out, width: int, size: int, n: int, seed: int) -> np.ndarray:
    call = f"random_sets({width}, {size}, {n}, seed={seed})"
    if out is None:
        raise Mistake(ex, f"{call} returned None: is the `return` line missing?", "returned-none")
    sets = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out)
    if sets.shape != (n, width):
        raise Mistake(ex, f"{call} returned shape {sets.shape}; it must be [n, width] = ({n}, {width}), one boolean "
                          f"row per random set", "sets-shape")
    if sets.dtype != bool:
        raise Mistake(ex, f"random_sets must return a boolean mask (dtype bool), got {sets.dtype}", "sets-dtype")
    sizes = sets.sum(1)
    if (sizes < size).any() and (sizes <= size).all():
        raise Mistake(ex, f"{int((sizes < size).sum())} of your {n} sets from {call} have fewer than {size} neurons: "
                          f"you drew WITH replacement (a neuron drawn twice counts once). Draw without replacement, "
                          f"e.g. rng.choice(width, size, replace=False), so each set has exactly as many neurons as "
                          f"the chosen one", "with-replacement")
    if (sizes != size).any():
        raise Mistake(ex, f"your sets from {call} have {sorted(set(sizes.tolist()))[:5]} neurons; each must have "
                          f"exactly {size}", "set-size")
    distinct = len({r.tobytes() for r in sets})
    if distinct <= 2 < expected_distinct(width, size, n):
        raise Mistake(ex, f"your {n} sets from {call} are {'all the same set' if distinct == 1 else 'two sets over and over'}: "
                          f"draw a new set for every row (one rng, many draws), not one set n times", "repeated-set")
    counts = sets.sum(0)
    lo, hi = even_bounds(width, size, n)
    if (counts == 0).any():
        k = int(np.flatnonzero(counts == 0)[0])
        raise Mistake(ex, f"neuron {k} is in none of your {n} sets from {call}: every neuron of the layer must be "
                          f"possible (rng.choice(width, ...), not width - 1 or range(1, width))", "never-drawn")
    if counts.min() < lo or counts.max() > hi:
        raise Mistake(ex, f"some neurons are drawn far more often than others ({int(counts.min())} to "
                          f"{int(counts.max())} times in {n} sets, where a fair draw stays within {lo}..{hi}): every "
                          f"neuron must be equally likely (the null compares the chosen set with ANY set of its size)",
                      "uneven")
    lo, hi = neighbour_bounds(width, size, n)
    together = int((sets[:, 1:] & sets[:, :-1]).sum())
    if not lo <= together <= hi:
        raise Mistake(ex, f"your sets from {call} are not random sets: neighbouring neurons are in the same set "
                          f"{together} times, where random sets of {size} give {lo:.0f}..{hi:.0f} (a random start "
                          f"and a block of consecutive neurons?). Draw each set with rng.choice(width, size, "
                          f"replace=False)", "not-random")
    if distinct < expected_distinct(width, size, n) / 2:
        raise Mistake(ex, f"your {n} sets from {call} hold only {distinct} different sets, where random sets give "
                          f"about {expected_distinct(width, size, n):.0f}: draw each set afresh from one generator",
                      "repeated-set")
    return sets


def _check_sets(ex: str, j, random_sets) -> None:
    got = {}
    for width, size, n, seed in SETS:
        out = j.call(random_sets, width, size, n, seed, context=f"random_sets({width}, {size}, {n}, seed={seed})")
        got[(width, size, n, seed)] = _as_sets(ex, out, width, size, n, seed)
    width, size, n, seed = SETS[0]
    again = _as_sets(ex, j.call(random_sets, width, size, n, seed), width, size, n, seed)
    if not np.array_equal(again, got[SETS[0]]):
        raise Mistake(ex, "the same seed gave different sets: use the seed (np.random.default_rng(seed)), so a "
                          "null can be reproduced", "unseeded")
    if np.array_equal(got[SETS[1]], got[SETS[2]]):
        raise Mistake(ex, "different seeds gave the same sets: your function ignores `seed` (a fixed "
                          "default_rng(0)?); make the generator from the seed you are given", "ignores-seed")


def random_null(random_sets, permutation_p) -> None:
    """(f) random_sets(width, size, n, seed) -> bool [n, width], each row `size` distinct neurons, the same for the
    same seed; permutation_p(observed, null) -> (1 + #{null >= observed}) / (1 + len(null))."""
    __tracebackhide__ = True
    ex = "(f) random_null"
    with judging(ex) as j:
        _check_sets(ex, j, random_sets)
        ref, named = reference_p(), _p_variants()
        assert not confusable(ref, named, 1e-9), "the check's cases cannot tell the permutation p from its mistakes"
        raw = [j.call(permutation_p, o, nl.copy(), context=f"permutation_p({o}, <{nl.size} null values>)")
               for o, nl in P_CASES]
        got = np.array([one_number(ex, v, f"for permutation_p({o}, null)") for v, (o, _) in zip(raw, P_CASES)])
        tol = max(tolerance(v, 1e-9) for v in raw)
        if np.allclose(got, ref, atol=tol, rtol=0):
            width, size, n, _ = SETS[0]
            return passed(ex, f"random sets of exactly {size} of {width} neurons, even, reproducible, different per "
                              f"seed; permutation p with the +1 rule ({', '.join(f'{p:.3f}' for p in ref)})")
        k = int(np.argmax(np.abs(got - ref)))
        o, nl = P_CASES[k]
        diagnose(ex, got, named, f"for observed = {o} and a null of {nl.size} values ({int(np.sum(nl >= o))} of "
                                 f"them >= {o}) you returned {got[k]:.4g}; (1 + #{{null >= observed}}) / (1 + N) = "
                                 f"{ref[k]:.4g}", tol)
