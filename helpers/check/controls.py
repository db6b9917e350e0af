"""Checkers for notebook 04: (f) a random-neuron null and its permutation p, (g) held-out selection."""
from __future__ import annotations

import numpy as np
import torch
from statsmodels.stats.multitest import fdrcorrection
from scipy import stats as st

from ._report import Mistake, as_array, close, diagnose, passed, run

# (observed, null): a tie with the null, an observation above every draw, one below every draw
P_CASES = [(0.5, np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.7, 0.3, 0.5, 0.0, 0.6])),
           (2.0, np.array([0.1, 0.4, 0.3, 0.9, 1.2, 0.2, 0.8, 0.5, 0.6, 0.7, 1.1, 0.0])),
           (-1.0, np.array([0.1, 0.4, -0.3, 0.9, 1.2]))]


def _p_variants(observed: float, null: np.ndarray) -> dict[str, float]:
    n = null.size
    return {
        "ref": (1 + np.sum(null >= observed)) / (1 + n),
        "no_plus_one": np.sum(null >= observed) / n,
        "strict": (1 + np.sum(null > observed)) / (1 + n),
        "below": (1 + np.sum(null <= observed)) / (1 + n),
        "two_sided": (1 + np.sum(np.abs(null) >= abs(observed))) / (1 + n),
        "top_only": (1 + np.sum(null >= observed)) / n,
        "bottom_only": np.sum(null >= observed) / (1 + n),
        "mean_z": float(st.norm.sf((observed - null.mean()) / null.std(ddof=1))),
    }


def random_null(random_sets, permutation_p) -> None:
    """(f) random_sets(width, size, n, seed) -> bool [n, width], each row `size` distinct neurons, the same for the
    same seed; permutation_p(observed, null) -> (1 + #{null >= observed}) / (1 + len(null))."""
    __tracebackhide__ = True
    ex = "(f) random_null"
    width, size, n = 50, 7, 400
    sets = run(ex, random_sets, width, size, n, 0)
    sets = np.asarray(sets.detach().cpu() if isinstance(sets, torch.Tensor) else sets)
    if sets.shape != (n, width):
        raise Mistake(ex, f"random_sets({width}, {size}, {n}, seed) returned shape {sets.shape}; it must be "
                          f"[n, width] = ({n}, {width}), one boolean row per random set")
    if sets.dtype != bool:
        raise Mistake(ex, f"random_sets must return a boolean mask (dtype bool), got {sets.dtype}")
    sizes = sets.sum(1)
    if (sizes < size).any():
        raise Mistake(ex, f"{int((sizes < size).sum())} of your {n} sets have fewer than {size} neurons: you drew "
                          f"WITH replacement (a neuron drawn twice counts once). Draw without replacement, e.g. "
                          f"rng.choice(width, size, replace=False), so each set has exactly as many neurons as "
                          f"the chosen one")
    if (sizes != size).any():
        raise Mistake(ex, f"your sets have {sorted(set(sizes.tolist()))[:5]} neurons; each must have exactly {size}")
    if len({r.tobytes() for r in sets}) < n // 2:
        raise Mistake(ex, "your sets repeat: draw a new set for every row (one rng, many draws), not one set n times")
    hits = sets.mean(0) * width / size
    if hits.min() < 0.5 or hits.max() > 1.5:
        raise Mistake(ex, "some neurons are drawn far more often than others: every neuron of the layer must be "
                          "equally likely (the null compares the chosen set with ANY set of its size)")
    again = np.asarray(run(ex, random_sets, width, size, n, 0))
    if not np.array_equal(again, sets):
        raise Mistake(ex, "the same seed gave different sets: use the seed (np.random.default_rng(seed)), so a "
                          "null can be reproduced")
    got = np.array([float(as_array(run(ex, permutation_p, o, nl.copy()), ex, "p")) for o, nl in P_CASES])
    variants = [_p_variants(o, nl) for o, nl in P_CASES]
    ref = np.array([v["ref"] for v in variants])
    if close(got, ref, 1e-9):
        return passed(ex, f"{n} random sets of exactly {size} of {width} neurons, reproducible; permutation p with "
                          f"the +1 rule ({', '.join(f'{p:.3f}' for p in ref)})")
    col = lambda k: np.array([v[k] for v in variants])  # noqa: E731
    diagnose(ex, got, {
        "your p has no +1: count/N can be 0, a claim that no random set could ever do as well, which a finite "
        "null cannot support. Use (1 + #{null >= observed}) / (1 + N) (the observed set counts as one draw)":
            col("no_plus_one"),
        "you counted null > observed; ties count against the chosen set: use >=": col("strict"),
        "your p counts the random sets that did WORSE (null <= observed): p is the share that did at least as "
        "well (null >= observed)": col("below"),
        "your p is two-sided (|null| >= |observed|); the question is one-sided: do the chosen neurons hurt MORE "
        "than random ones?": col("two_sided"),
        "you added 1 on top but not below: (1 + count) / N can exceed 1; the observed set is one more draw, "
        "so N grows by 1 too: (1 + count) / (1 + N)": col("top_only"),
        "you added 1 below but not on top: count / (1 + N) can still be 0; use (1 + count) / (1 + N)":
            col("bottom_only"),
        "that is a normal approximation from the null's mean and sd; count the draws instead": col("mean_z"),
    }, tol=1e-9)
    raise Mistake(ex, f"your p-values {np.round(got, 4).tolist()} are not (1 + #{{null >= observed}}) / (1 + N) = "
                      f"{np.round(ref, 4).tolist()}")


def _heldout_data(seed: int = 3, n: int = 30, width: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where selection on all, train or test pairs gives different neuron sets."""
    rng = np.random.default_rng(seed)
    effect = np.concatenate([np.linspace(-1.5, 0, width // 2), np.linspace(0, 1.5, width // 2)])
    b = rng.normal(size=(n, width))
    return b - effect + rng.normal(size=(n, width)), b      # a - b = -effect: b (her) neurons have t < 0


def _select(a, b, rows, q=0.05, word="b", correct="bh", test="paired") -> np.ndarray:
    """The reference selection and its usual wrong versions: rows = the pairs it sees; word "a", "b" or
    "either" (both directions); correct "bh", "none" (p < q) or "bonferroni"; test "paired" or "unpaired"."""
    r = st.ttest_rel(a[rows], b[rows], axis=0) if test == "paired" else st.ttest_ind(a[rows], b[rows], axis=0)
    if correct == "bh":
        sig = fdrcorrection(r.pvalue, alpha=q)[0]
    else:
        sig = r.pvalue < (q if correct == "none" else q / a.shape[1])
    return sig & {"b": r.statistic < 0, "a": r.statistic > 0, "either": np.ones(a.shape[1], bool)}[word]


def heldout(fn) -> None:
    """(g) fn(acts_a, acts_b, train, test, lesion_drop, q) -> lesion_drop(mask, test): the b ('her') neurons
    chosen (paired t, BH at q) on the train pairs only, lesioned at the test pairs' texts."""
    __tracebackhide__ = True
    ex = "(g) heldout"
    a, b = _heldout_data()
    idx = np.random.default_rng(0).permutation(len(a))
    train, test = np.sort(idx[:20]), np.sort(idx[20:])
    calls = []

    def lesion_drop(neurons, pairs):
        m = np.asarray(neurons.detach().cpu() if isinstance(neurons, torch.Tensor) else neurons)
        m = m if m.dtype == bool else np.isin(np.arange(a.shape[1]), m)
        calls.append((m, np.sort(np.asarray(pairs, dtype=int).ravel())))
        return float(m.sum()) + 0.001 * float(np.sum(pairs))

    out = run(ex, fn, a.copy(), b.copy(), train.copy(), test.copy(), lesion_drop, 0.05)
    if not calls:
        raise Mistake(ex, "your function never called lesion_drop(neurons, pairs): it should return the lesion's "
                          "drop on the held-out pairs, lesion_drop(her_neurons, test)")
    mask, pairs = calls[-1]
    if mask.shape != (a.shape[1],):
        raise Mistake(ex, f"you passed lesion_drop a mask of shape {mask.shape}; pass one boolean per neuron "
                          f"({a.shape[1]}), e.g. significant & (t < 0)")
    want = _select(a, b, train)
    if not np.array_equal(pairs, test):
        if np.array_equal(pairs, train):
            raise Mistake(ex, "you lesioned at the TRAINING pairs, the same pairs that chose the neurons: that is "
                              "double dipping (their noise helped choose them); lesion at the held-out pairs `test`")
        if np.array_equal(pairs, np.arange(len(a))):
            raise Mistake(ex, "you lesioned at ALL pairs, the training pairs that chose the neurons included: that "
                              "is double dipping; lesion at the held-out pairs `test` only")
        raise Mistake(ex, f"you lesioned at pairs {pairs[:6].tolist()}...; use the held-out pairs `test`")
    if not np.array_equal(mask, want):
        diagnose(ex, mask, {
            "you chose the neurons on ALL pairs, the held-out ones included: selection and test then share "
            "pairs (double dipping). Select on acts_a[train], acts_b[train] only": _select(a, b, np.arange(len(a))),
            "you chose the neurons on the held-out pairs themselves (double dipping): select on `train`, "
            "lesion at `test`": _select(a, b, test),
            "you chose the 'a' neurons (t > 0): the wrong direction. The t statistic is a - b, so the 'b' ('her') "
            "neurons are the ones with t < 0": _select(a, b, train, word="a"),
            "you kept the significant neurons of both directions; keep only the 'b' ('her') ones, t < 0":
                _select(a, b, train, word="either"),
            "you chose by p < q, uncorrected: with one test per neuron that lets in false positives; use the BH "
            "mask (fdrcorrection(p, alpha=q)[0])": _select(a, b, train, correct="none"),
            "you used Bonferroni (p < q / m); the exercise asks for BH (fdrcorrection(p, alpha=q)[0])":
                _select(a, b, train, correct="bonferroni"),
            "you used an unpaired t-test (ttest_ind); the sentences come in pairs: use the paired test "
            "(ttest_rel), which removes what the two sentences of a pair share": _select(a, b, train, test="unpaired"),
        }, tol=0)
        raise Mistake(ex, f"your neuron set has {int(mask.sum())} neurons; the 'b' neurons chosen on the train pairs "
                          f"(paired t-test, BH at q) number {int(want.sum())}")
    if not close(as_array(out, ex, "your result"), lesion_drop(want, test), 1e-9):
        raise Mistake(ex, "return what lesion_drop(neurons, test) returned")
    return passed(ex, f"{int(want.sum())} 'b' neurons chosen on {len(train)} training pairs only, lesioned at the "
                      f"{len(test)} held-out pairs")
