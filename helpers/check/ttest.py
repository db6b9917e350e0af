"""Checker for notebook 01's exercise (c): the paired t-test per neuron and the Benjamini-Hochberg mask.

    (c) paired_test   t: its sign flipped, an unpaired test, sd with ddof=0, no sqrt(n), p-values for t, the
                      wrong axis. Mask: p < q, BY, Bonferroni, BH without its step-up, ranks counted from 0 or
                      from 2, ranks of the unsorted p, the mask left in sorted order, adjusted p, an inverted or
                      one-sided mask, 0/1 numbers instead of booleans, q ignored (two q are tried)

The data are made so that every one of those gives a different answer at both q (tests/test_check_trust.py
verifies it, and the check refuses to judge if they did not).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as st
from statsmodels.stats.multitest import fdrcorrection

from ._guard import judging
from ._report import Mistake, as_array, confusable, diagnose, passed, tolerance
from .position import returned

QS = (0.05, 0.2)
SEED, PAIRS, WIDTH = 11, 16, 240
TOL = 1e-9


def designed_p(m: int = WIDTH) -> np.ndarray:
    """Sorted p-values [m] laid out around BH's lines q k / m at both QS, so that BH with its step-up, without
    it, and with ranks from 0 or from 2 each reject a different number of neurons (at q=0.05: 30 by BH, 28
    from rank 0, 31 from rank 2, and rank 29 passes only through the step-up; at q=0.2: 90, 88, 91 and 89),
    and BY and Bonferroni differ too (14 and 10 at q=0.05, 16 and 14 at q=0.2)."""
    assert m == 240, "the layout below is for 240 neurons"
    p = np.empty(m)
    p[:10] = np.geomspace(1e-7, 1e-4, 10)                    # below Bonferroni's 0.05 / m
    p[10:14] = [3.0e-4, 3.2e-4, 3.4e-4, 3.6e-4]              # under BY's line at 0.05, above Bonferroni's
    p[14:16] = [1.0e-3, 1.2e-3]                              # the same at 0.2
    p[16:28] = 0.8 * 0.05 * np.arange(17, 29) / m
    p[28:31] = [0.00610, 0.00620, 0.00655]                   # ranks 29, 30, 31 around 0.05 k / 240
    p[31:88] = np.linspace(0.010, 0.070, 57)
    p[88:91] = [0.0745, 0.0748, 0.0762]                      # ranks 89, 90, 91 around 0.2 k / 240
    p[91:] = np.linspace(0.08, 0.999, m - 91)
    return p


def data(seed: int | None = None, n: int = PAIRS, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Paired data [n, width] whose paired t-test gives exactly the designed p-values (both signs of t, in a
    shuffled neuron order), so that the BH mask and each of its usual wrong versions differ at both QS."""
    rng = np.random.default_rng(SEED if seed is None else seed)
    p = rng.permutation(designed_p(width))
    t = st.t.isf(p / 2, n - 1) * np.where(rng.random(width) < 0.5, 1.0, -1.0)
    z = rng.normal(size=(n, width))
    z = (z - z.mean(0)) / z.std(0, ddof=1)                   # each column: mean 0, sd 1 exactly
    b = rng.normal(size=(n, width))
    return b + t / np.sqrt(n) + z, b


def t_variants(a: np.ndarray, b: np.ndarray) -> dict:
    """{key: (text, t)} of the usual wrong t statistics."""
    n = len(a)
    d = a - b
    return {
        "t-sign": ("your t has the opposite sign: the kit's convention is t = mean(a - b) / (sd / sqrt(n)), so t > 0 "
                   "marks the neurons more active for a (him). Call ttest_rel(acts_a, acts_b), a first",
                   -st.ttest_rel(a, b, axis=0).statistic),
        "unpaired": ("that is the independent-samples t-test (ttest_ind); the sentences come in matched pairs, so "
                     "use the paired test (ttest_rel), which removes what the two sentences of a pair share",
                     st.ttest_ind(a, b, axis=0).statistic),
        "p-for-t": ("your first result holds the p-values; t is the test's .statistic (its .pvalue goes into the "
                    "mask)", st.ttest_rel(a, b, axis=0).pvalue),
        "ddof-0": ("close, but your standard deviation uses ddof=0 (np.std's default); the t-test uses the sample sd, "
                   "np.std(d, axis=0, ddof=1)", d.mean(0) / (d.std(0) / np.sqrt(n))),
        "no-sqrt-n": ("your t is mean / sd: divide the sd by sqrt(n) (the standard error of the mean difference)",
                      d.mean(0) / d.std(0, ddof=1)),
    }


def bh_by_rank(p: np.ndarray, q: float, shift: int = 0, step_up: bool = True, sort: bool = True,
               back: bool = True) -> np.ndarray:
    """BH written by hand, with switches for its usual mistakes: rank k (1..m) + shift; step_up=False keeps
    each p_(k) <= q k / m on its own; sort=False uses the unsorted positions as ranks; back=False leaves the
    mask in sorted order."""
    m = p.size
    order = np.argsort(p, kind="stable") if sort else np.arange(m)
    ranks = np.arange(1, m + 1) + shift
    ok = p[order] <= q * ranks / m
    if step_up:
        k = np.flatnonzero(ok)
        ok = np.arange(m) <= k[-1] if k.size else np.zeros(m, bool)
    if not back:
        return ok
    mask = np.zeros(m, bool)
    mask[order] = ok
    return mask


def mask_variants(t: np.ndarray, p: np.ndarray, q: float) -> dict:
    """{key: (text, mask)} of the usual wrong masks at q."""
    bh = fdrcorrection(p, alpha=q)[0]
    return {
        "uncorrected": ("your mask is p < q, with no correction: with one test per neuron, about q of the neurons "
                        "without any effect pass by chance. Use the BH rejection mask, fdrcorrection(p, alpha=q)[0]",
                        p < q),
        "by-not-bh": ("that is the Benjamini-Yekutieli mask (method='negcorr'); this exercise asks for "
                      "Benjamini-Hochberg", fdrcorrection(p, alpha=q, method="negcorr")[0]),
        "bonferroni": ("that is Bonferroni (p < q / m): it controls the chance of any false positive, stricter than "
                       "the false discovery rate that BH controls; use fdrcorrection(p, alpha=q)[0]", p < q / p.size),
        "no-step-up": ("your mask keeps each neuron whose p_(k) <= q k / m on its own: BH steps UP, so once the "
                       "largest such k is found, ALL neurons of rank <= k pass, even one whose own p_(k) is above "
                       "its line", bh_by_rank(p, q, step_up=False)),
        "rank-from-0": ("your ranks start at 0: BH's line is q k / m with k = 1 for the smallest p "
                        "(np.arange(1, m + 1))", bh_by_rank(p, q, shift=-1)),
        "rank-from-2": ("your ranks are one too large: BH's line is q k / m with k = 1 for the smallest p",
                        bh_by_rank(p, q, shift=1)),
        "unsorted-ranks": ("your ranks follow the neurons' order, not the p-values': sort the p-values first "
                           "(np.argsort(p)), compare p_(k) with q k / m, then map the mask back to the neurons",
                           bh_by_rank(p, q, sort=False)),
        "sorted-order": ("your mask is in the order of the SORTED p-values: map it back to the neurons "
                         "(mask[order] = passed), so mask[i] is neuron i's", bh_by_rank(p, q, back=False)),
        "inverted": ("your mask marks the neurons that do NOT pass: it is inverted", ~bh),
        "positive-only": ("your mask keeps only the neurons with t > 0: `significant` is every neuron that passes, "
                          "in either direction (t's sign says which word it prefers)", bh & (t > 0)),
        "negative-only": ("your mask keeps only the neurons with t < 0: `significant` is every neuron that passes, "
                          "in either direction (t's sign says which word it prefers)", bh & (t < 0)),
    }


def _as_pair(ex: str, out) -> tuple:
    returned(ex, out)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Mistake(ex, f"return two things, `return t, significant`; got {type(out).__name__}"
                          + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""), "not-two-results")
    return returned(ex, out[0], "your t"), returned(ex, out[1], "your `significant`")


def _check_t(ex: str, t_raw, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = as_array(t_raw, ex, "t")
    ref = st.ttest_rel(a, b, axis=0).statistic
    n, width = a.shape
    if t.shape != ref.shape:
        if t.shape == (n,):
            raise Mistake(ex, f"you returned {n} t values, one per SENTENCE PAIR: test along axis=0, so that each "
                              f"neuron (column) gets its own t ({width} of them)", "wrong-axis")
        raise Mistake(ex, f"t has shape {t.shape}; expected one t per neuron, {ref.shape}", "wrong-shape")
    tol = tolerance(t_raw, TOL)
    if not np.allclose(t, ref, atol=tol * max(1.0, np.abs(ref).max()), rtol=0):
        k = int(np.argmax(np.abs(t - ref)))
        diagnose(ex, t, t_variants(a, b), f"your t differs from scipy.stats.ttest_rel(acts_a, acts_b, axis=0)"
                                          f".statistic: neuron {k}: yours {t[k]:.4g}, scipy's {ref[k]:.4g}", tol)
    return ref


def _check_mask(ex: str, sig_raw, t: np.ndarray, p: np.ndarray, q: float, earlier: np.ndarray | None) -> None:
    """Raise Mistake unless `sig` is the BH rejection mask of p at q; name what it is instead."""
    sig = np.asarray(sig_raw.detach().cpu() if isinstance(sig_raw, torch.Tensor) else sig_raw)
    rejected, p_adj = fdrcorrection(p, alpha=q)
    if sig.shape != t.shape:
        raise Mistake(ex, f"`significant` has shape {sig.shape}; it must hold one True/False per neuron, {t.shape}",
                      "mask-shape")
    if sig.dtype != bool:
        num_ = np.issubdtype(sig.dtype, np.number)
        tol = tolerance(sig_raw, TOL)
        if num_ and np.allclose(sig, p_adj, atol=tol, rtol=0):
            raise Mistake(ex, "your `significant` is the BH-adjusted p-values, not the rejection mask: "
                              "fdrcorrection returns (rejected, p_adjusted); take [0]", "adjusted-p")
        if num_ and np.allclose(sig, p, atol=tol, rtol=0):
            raise Mistake(ex, "your `significant` holds the p-values; it must be a True/False mask: the BH "
                              "rejection mask, fdrcorrection(p, alpha=q)[0]", "p-as-mask")
        if num_ and np.isin(sig, (0, 1)).all():
            raise Mistake(ex, f"your `significant` holds 0s and 1s ({sig.dtype}), not True/False: with numbers, "
                              f"acts[:, mask] picks columns 0 and 1 over and over instead of the neurons that pass. "
                              f"Return a boolean array (dtype bool), e.g. fdrcorrection(p, alpha=q)[0]", "zero-one")
        raise Mistake(ex, f"`significant` must be a boolean array (True/False per neuron), got {sig.dtype}",
                      "not-boolean")
    if np.array_equal(sig, rejected):
        return
    named = mask_variants(t, p, q)
    if earlier is not None:
        named["ignored-q"] = (f"right at q={QS[0]}, but with q={q} your mask is still the one for {QS[0]}: you "
                              f"ignored q. Pass it on: fdrcorrection(p, alpha=q)", earlier)
    k = int(np.flatnonzero(sig != rejected)[0])
    diagnose(ex, sig, named, f"your mask passes {int(sig.sum())} neurons, the BH mask at q={q} passes "
                             f"{int(rejected.sum())}; first difference: neuron {k} (p = {p[k]:.3g}, rank "
                             f"{int((p < p[k]).sum()) + 1} of {p.size}): yours {bool(sig[k])}, BH's {bool(rejected[k])}",
             tol=0)


def paired_test(fn) -> None:
    """(c) fn(acts_a, acts_b, q) -> (t, significant): paired t of a - b per neuron, and the BH rejection mask."""
    __tracebackhide__ = True
    ex = "(c) paired_test"
    with judging(ex) as j:
        a, b = data()
        res = st.ttest_rel(a, b, axis=0)
        for q in QS:        # power: the data tell the BH mask from each usual mistake
            assert not confusable(fdrcorrection(res.pvalue, alpha=q)[0], mask_variants(res.statistic, res.pvalue, q),
                                  0), f"at q={q} the check's data cannot tell the BH mask from its mistakes"
        first = None
        for q in QS:
            t_raw, sig = _as_pair(ex, j.call(fn, a.copy(), b.copy(), q, context=f"at q={q}"))
            t = _check_t(ex, t_raw, a, b)
            _check_mask(ex, sig, t, res.pvalue, q, first)
            first = fdrcorrection(res.pvalue, alpha=QS[0])[0]
        counts = [int(fdrcorrection(res.pvalue, alpha=q)[0].sum()) for q in QS]
        return passed(ex, f"paired t (a - b) and the BH mask: {counts[0]} of {res.pvalue.size} neurons pass at "
                          f"q={QS[0]} ({counts[1]} at q={QS[1]}), where uncorrected p < {QS[0]} would pass "
                          f"{int((res.pvalue < QS[0]).sum())}")
