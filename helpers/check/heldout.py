"""Checker for notebook 04's exercise (g): choose neurons on some pairs, lesion on the others.

    (g) heldout   lesioned at the training pairs or at all pairs; neurons chosen on all pairs or on the held-out
                  ones; the 'a' neurons or both directions; p < q, Bonferroni or BY instead of BH; an unpaired
                  test; q ignored (two q are tried); not returning what lesion_drop gave

The student's function gets a stand-in `lesion_drop(mask, pairs)` that records what it was asked, so the
check sees the neuron set and the pairs directly. The data make every usual mistake a different set at both q.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as st
from statsmodels.stats.multitest import fdrcorrection

from ._guard import judging
from ._report import Mistake, as_array, close, confusable, diagnose, passed, tolerance

QS = (0.05, 0.2)
SEED, PAIRS, WIDTH, N_TRAIN = 2, 30, 120, 20      # seed: the first whose sets all differ at both q


def data(seed: int | None = None, n: int = PAIRS, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where selection on all, train or test pairs gives different neuron sets."""
    rng = np.random.default_rng(SEED if seed is None else seed)
    effect = np.concatenate([np.linspace(-1.5, 0, width // 2), np.linspace(0, 1.5, width // 2)])
    b = rng.normal(size=(n, width))
    return b - effect + rng.normal(size=(n, width)), b      # a - b = -effect: b (her) neurons have t < 0


def split(n: int = PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """The training and held-out pair indices the check passes (not sorted, so their order says nothing)."""
    idx = np.random.default_rng(0).permutation(n)
    return idx[:N_TRAIN], idx[N_TRAIN:]


def select(a, b, rows, q=0.05, word="b", correct="bh", test="paired") -> np.ndarray:
    """The reference selection and its usual wrong versions: rows = the pairs it sees; word "a", "b" or
    "either" (both directions); correct "bh", "by", "none" (p < q) or "bonferroni"; test "paired" or "unpaired"."""
    r = st.ttest_rel(a[rows], b[rows], axis=0) if test == "paired" else st.ttest_ind(a[rows], b[rows], axis=0)
    if correct in ("bh", "by"):
        sig = fdrcorrection(r.pvalue, alpha=q, method="indep" if correct == "bh" else "negcorr")[0]
    else:
        sig = r.pvalue < (q if correct == "none" else q / a.shape[1])
    return sig & {"b": r.statistic < 0, "a": r.statistic > 0, "either": np.ones(a.shape[1], bool)}[word]


def variants(a, b, train, test, q: float) -> dict:
    """{key: (text, mask)} of the usual wrong selections at q."""
    everything = np.arange(len(a))
    out = {
        "selected-on-all": ("you chose the neurons on ALL pairs, the held-out ones included: selection and test then "
                            "share pairs (double dipping). Select on acts_a[train], acts_b[train] only",
                            select(a, b, everything, q)),
        "selected-on-test": ("you chose the neurons on the held-out pairs themselves (double dipping): select on "
                             "`train`, lesion at `test`", select(a, b, test, q)),
        "a-neurons": ("you chose the 'a' neurons (t > 0): the wrong direction. The t statistic is a - b, so the 'b' "
                      "('her') neurons are the ones with t < 0", select(a, b, train, q, word="a")),
        "both-directions": ("you kept the significant neurons of both directions; keep only the 'b' ('her') ones, "
                            "t < 0", select(a, b, train, q, word="either")),
        "uncorrected": ("you chose by p < q, uncorrected: with one test per neuron that lets in false positives; use "
                        "the BH mask (fdrcorrection(p, alpha=q)[0])", select(a, b, train, q, correct="none")),
        "bonferroni": ("you used Bonferroni (p < q / m); the exercise asks for BH (fdrcorrection(p, alpha=q)[0])",
                       select(a, b, train, q, correct="bonferroni")),
        "by-not-bh": ("you used Benjamini-Yekutieli (method='negcorr'); the exercise asks for BH",
                      select(a, b, train, q, correct="by")),
        "unpaired": ("you used an unpaired t-test (ttest_ind); the sentences come in pairs: use the paired test "
                     "(ttest_rel), which removes what the two sentences of a pair share",
                     select(a, b, train, q, test="unpaired")),
    }
    if q != QS[0]:
        out["ignored-q"] = (f"right at q={QS[0]}, but at q={q} your neurons are still those of q={QS[0]}: you ignored "
                            f"q. Pass it on: fdrcorrection(p, alpha=q)", select(a, b, train, QS[0]))
    return out


class _LesionDrop:
    """What the student's function gets as lesion_drop: records (mask, pairs) and returns a number that
    depends on both."""

    def __init__(self, width: int):
        self.width, self.calls = width, []

    def __call__(self, neurons, pairs):
        m = np.asarray(neurons.detach().cpu() if isinstance(neurons, torch.Tensor) else neurons)
        m = m if m.dtype == bool else np.isin(np.arange(self.width), m)
        pairs = np.sort(np.asarray(pairs.detach().cpu() if isinstance(pairs, torch.Tensor) else pairs,
                                   dtype=int).ravel())
        self.calls.append((m, pairs))
        return value(m, pairs)


def value(mask: np.ndarray, pairs: np.ndarray) -> float:
    return float(mask.sum()) + 0.001 * float(np.sum(pairs))


def _check_call(ex: str, out, drop: _LesionDrop, a, b, train, test, q: float) -> None:
    if not drop.calls:
        raise Mistake(ex, "your function never called lesion_drop(neurons, pairs): it should return the lesion's "
                          "drop on the held-out pairs, lesion_drop(her_neurons, test)", "no-lesion")
    mask, pairs = drop.calls[-1]
    if mask.shape != (a.shape[1],):
        raise Mistake(ex, f"you passed lesion_drop a mask of shape {mask.shape}; pass one boolean per neuron "
                          f"({a.shape[1]}), e.g. significant & (t < 0)", "mask-shape")
    if not np.array_equal(pairs, np.sort(test)):
        if np.array_equal(pairs, np.sort(train)):
            raise Mistake(ex, "you lesioned at the TRAINING pairs, the same pairs that chose the neurons: that is "
                              "double dipping (their noise helped choose them); lesion at the held-out pairs `test`",
                          "lesioned-on-train")
        if np.array_equal(pairs, np.arange(len(a))):
            raise Mistake(ex, "you lesioned at ALL pairs, the training pairs that chose the neurons included: that "
                              "is double dipping; lesion at the held-out pairs `test` only", "lesioned-on-all")
        raise Mistake(ex, f"you lesioned at pairs {pairs[:6].tolist()}...; use the held-out pairs `test`", "wrong-pairs")
    want = select(a, b, train, q)
    if not np.array_equal(mask, want):
        k = int(np.flatnonzero(mask != want)[0])
        diagnose(ex, mask, variants(a, b, train, test, q),
                 f"at q={q} your neuron set has {int(mask.sum())} neurons; the 'b' neurons chosen on the train pairs "
                 f"(paired t-test, BH at q) number {int(want.sum())}; first difference: neuron {k} (yours "
                 f"{bool(mask[k])}, the kit's {bool(want[k])})", tol=0)
    if out is None:
        raise Mistake(ex, "your function returned None: return what lesion_drop(neurons, test) returned",
                      "not-returned")
    got = as_array(out, ex, "your result")
    if got.size != 1 or not close(got.ravel(), [value(want, test)], tolerance(out, 1e-9)):
        raise Mistake(ex, "return what lesion_drop(neurons, test) returned", "not-returned")


def heldout(fn) -> None:
    """(g) fn(acts_a, acts_b, train, test, lesion_drop, q) -> lesion_drop(mask, test): the b ('her') neurons
    chosen (paired t, BH at q) on the train pairs only, lesioned at the test pairs' texts."""
    __tracebackhide__ = True
    ex = "(g) heldout"
    with judging(ex) as j:
        a, b = data()
        train, test = split()
        for q in QS:
            assert not confusable(select(a, b, train, q), variants(a, b, train, test, q), 0), \
                f"at q={q} the check's data cannot tell the right selection from its mistakes"
        for q in QS:
            drop = _LesionDrop(a.shape[1])
            out = j.call(fn, a.copy(), b.copy(), train.copy(), test.copy(), drop, q, context=f"at q={q}")
            _check_call(ex, out, drop, a, b, train, test, q)
        sizes = [int(select(a, b, train, q).sum()) for q in QS]
        return passed(ex, f"{sizes[0]} 'b' neurons chosen on {len(train)} training pairs only at q={QS[0]} "
                          f"({sizes[1]} at q={QS[1]}), lesioned at the {len(test)} held-out pairs")
