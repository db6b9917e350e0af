"""Per-neuron statistics for a paired design (arrays in, a plain result out).

    paired_ttest_fdr(a, b, q, method)  paired t-test per neuron + FDR -> PairedResult
    fdr(p, q, method)                  (rejected, p_adjusted), NaN-safe wrapper of statsmodels
    cohens_dz(a, b)                    paired effect size per neuron
    paired_wilcoxon(a, b)              signed-rank p-values per neuron (no normality assumption)
    holm(p)                            Holm-adjusted p for a small family of tests (e.g. one per layer)
    permutation_p(observed, null)      Monte-Carlo p with the +1 rule, (1 + #{null >= observed}) / (1 + N)
    sequential_p(observed, null, h, n) Besag-Clifford sequential Monte-Carlo p -> SequentialP (p, draws used)

Assumptions. The paired t-test treats the n differences a_i - b_i of a neuron as
independent draws from a normal distribution (with n >= ~30 the mean's
sampling distribution is close to normal anyway); pairs must be matched
(sentence i of A and sentence i of B differ only in the target word).
FDR "bh" (Benjamini-Hochberg) controls the false discovery rate when the tests
are independent or positively correlated; "by" (Benjamini-Yekutieli) holds under
any dependence and is stricter (it divides q by sum_{i<=m} 1/i, ~8.6 for 3072 tests).
Neurons of one layer read the same residual stream, so their tests are correlated.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from numbers import Real

import numpy as np
import torch
from scipy import special as _sp
from scipy import stats as _st
from statsmodels.stats.multitest import fdrcorrection

METHODS = {"bh": "indep", "by": "negcorr"}     # FDR method -> statsmodels' name; any case is accepted
_METHOD_NAMES = {"bh": "Benjamini-Hochberg", "by": "Benjamini-Yekutieli"}


def _check_q(q) -> float:
    """q as a float after checking it is a number with 0 < q < 1 (a str or None is a TypeError)."""
    if isinstance(q, (bool, np.bool_)) or not isinstance(q, Real):
        raise TypeError(f"q (the FDR level) must be a number with 0 < q < 1, e.g. q=0.05; "
                        f"got {q!r} ({type(q).__name__})")
    if not 0 < q < 1:
        raise ValueError(f"q (the FDR level) must be a number with 0 < q < 1, e.g. q=0.05; got {q!r}")
    return float(q)


def _check_method(method) -> str:
    """The FDR method's key in METHODS ("bh" or "by"), from any case ("BH", "By", "bh")."""
    key = method.lower() if isinstance(method, str) else None
    if key not in METHODS:
        valid = ", ".join(f"'{k}' ({v})" for k, v in _METHOD_NAMES.items())
        raise ValueError(f"method must be one of {valid}, in any case; got {method!r}")
    return key


def _few(ix, limit: int = 10) -> str:
    """'0, 3, 7' or '0, 1, ..., 9, ...' (the first `limit` indices)."""
    ix = [int(i) for i in ix]
    return ", ".join(map(str, ix[:limit])) + (", ..." if len(ix) > limit else "")


def _as_array(x) -> tuple[np.ndarray, float]:
    """(float64 array, machine epsilon of the input's own float type; 0 for integers) from a list,
    array or torch tensor (detached, on the CPU). float32 activations keep float32's rounding in them."""
    if hasattr(x, "detach"):
        eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 0.0
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()   # numpy has no bfloat16
    else:
        x = np.asarray(x)
        eps = float(np.finfo(x.dtype).eps) if np.issubdtype(x.dtype, np.floating) else 0.0
    return np.asarray(x, dtype=np.float64), eps


def _varies(a: np.ndarray, b: np.ndarray, sd: np.ndarray, eps: float) -> np.ndarray:
    """[n_neurons] bool: the differences a - b vary by more than rounding. Zero variance is judged
    relative to each neuron's own scale (largest |a| or |b|), so rescaling the data changes nothing,
    and at the input's precision: sd <= max(1e-12, 8 eps) x scale counts as constant (float32: 9.5e-7)."""
    scale = np.maximum(np.abs(a).max(axis=0), np.abs(b).max(axis=0))
    return sd > max(1e-12, 8 * eps) * scale


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray, float]:
    """(a, b, eps): float64 [n_pairs, n_neurons] arrays after checking shapes and values; eps of the
    coarser input precision (see _varies)."""
    (a, ea), (b, eb) = _as_array(a), _as_array(b)
    a = a[:, None] if a.ndim == 1 else a        # 1-D: one neuron, whichever of a and b it is
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be [n_pairs, n_neurons] arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        longer, n = ("a", b.shape[0]) if a.shape[0] > b.shape[0] else ("b", a.shape[0])
        raise ValueError(f"a paired test needs matched rows: a and b have {a.shape[0]} vs {b.shape[0]} pairs, "
                         f"so rows {n}..{max(a.shape[0], b.shape[0]) - 1} of {longer} have no partner "
                         f"(every sentence in A needs its partner in B, in the same order)")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same neurons: a has shape {a.shape} but b has {b.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {a.shape[0]}")
    bad_a, bad_b = ~np.isfinite(a), ~np.isfinite(b)
    bad = bad_a | bad_b                                       # [n_pairs, n_neurons]
    if bad.any():
        cols, rows = np.flatnonzero(bad.any(0)), np.flatnonzero(bad.any(1))
        more = f" (and {cols.size - 1} more: {_few(cols[1:], 5)})" if cols.size > 1 else ""
        where = " and ".join(s for s, m in (("a", bad_a), ("b", bad_b)) if m.any())
        shown = rows.tolist() if rows.size <= 10 else f"[{_few(rows)}]"
        count = f"all {a.shape[0]} pairs" if rows.size == a.shape[0] else f"{rows.size} of {a.shape[0]} pairs"
        raise ValueError(f"neuron {cols[0]}{more} has NaN or inf values: pairs {shown} contain NaN or inf "
                         f"({count}; in {where})")
    return a, b, max(ea, eb)


def fdr(p, q: float = 0.05, method: str = "bh") -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg ("bh") or Benjamini-Yekutieli ("by", either in any case) over the finite p-values.

    p: array of p-values in [0, 1], any shape. NaN p-values (untestable neurons) are left out of
    the correction: they are never rejected and their adjusted p is NaN. A value outside [0, 1]
    (inf included) is an error naming its index. q: a number, 0 < q < 1. Returns (rejected, p_adjusted),
    both p's shape.
    """
    method, q = _check_method(method), _check_q(q)
    p = np.asarray(p, dtype=np.float64)
    bad = ~np.isnan(p) & ~((p >= 0) & (p <= 1))
    if bad.any():
        at = np.unravel_index(np.flatnonzero(bad)[0], p.shape)
        name = f"p[{', '.join(str(int(i)) for i in at)}]" if at else "p"
        raise ValueError(f"p-values must lie in [0, 1] (NaN marks an untestable neuron), but {name} = "
                         f"{float(p[at])!r} ({int(bad.sum())} of {p.size} values are outside [0, 1])")
    ok = np.isfinite(p)
    rejected = np.zeros(p.shape, dtype=bool)
    p_adj = np.full(p.shape, np.nan)
    if ok.any():
        rejected[ok], p_adj[ok] = fdrcorrection(p[ok], alpha=q, method=METHODS[method])
    return rejected, p_adj


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values, [m] -> [m] in the same order, capped at 1; NaN stays NaN and
    does not count in m. Controls the family-wise error rate (any false positive at all) under any
    dependence between the tests: for a few tests whose best is reported, e.g. one lesion per layer."""
    p = np.asarray(p.detach().cpu() if hasattr(p, "detach") else p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm takes a 1-D family of p-values, got shape {p.shape}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p[(p < 0) | (p > 1)][:5].tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def cohens_dz(a, b) -> np.ndarray:
    """Mean paired difference over its standard deviation, per neuron: [n_pairs, n_neurons] -> [n_neurons].
    NaN where the differences do not vary beyond rounding (the same rule as paired_ttest_fdr, so a
    neuron the t-test cannot test gets no effect size either)."""
    a, b, eps = _check_pair(a, b)
    d = a - b
    sd = d.std(axis=0, ddof=1)
    live = _varies(a, b, sd, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(live, d.mean(0) / np.where(live, sd, 1), np.nan)


def paired_wilcoxon(a, b) -> np.ndarray:
    """Two-sided Wilcoxon signed-rank p-value per neuron, [n_pairs, n_neurons] -> [n_neurons]
    (NaN where all differences are 0; zero differences are dropped, zero_method="wilcox").

    Each neuron's p depends on its own column only and equals scipy.stats.wilcoxon(d) of scipy >= 1.15
    (default method="auto", zero_method="wilcox", correction=False) on that column alone, on every
    scipy version: the p-values are computed here, not by scipy's wilcoxon, whose method names
    ("approx" up to 1.14, "asymptotic" from 1.15) and handling of ties and zeros (before 1.15: exact
    or normal approximation, never sign flips) depend on the version. scipy's method="auto" also
    decides for the whole array at once, from ties and zeros anywhere in it, so a neighbour could
    change a neuron's p. The rule, per column (n = n_pairs, zeros included):
      n > 50                        -> normal approximation;
      else no ties and no zeros     -> exact null distribution of the signed-rank sum;
      else (ties or zeros) n <= 13  -> all 2^n sign flips (scipy's deterministic permutation test);
      else                          -> normal approximation.
    The normal approximation: z = (R+ - m(m+1)/4) / sqrt((m(m+1)(2m+1) - sum(t^3 - t)/2) / 24),
    p = 2 Phi(-|z|), over the m nonzero differences, R+ the sum of the (average) ranks of |d| of the
    positive ones, t the sizes of groups of tied |d|; no continuity correction.
    """
    a, b, _ = _check_pair(a, b)
    d = a - b
    n = d.shape[0]
    p = np.full(d.shape[1], np.nan)
    live = np.any(d != 0, axis=0)
    if not live.any():
        return p
    s = np.sort(np.abs(d), axis=0)
    tied = (d == 0).any(0) | ((np.diff(s, axis=0) == 0) & (s[1:] != 0)).any(0)
    exact = live & ~tied if n <= 50 else np.zeros_like(live)
    flips = live & tied if n <= 13 else np.zeros_like(live)
    normal = live & ~exact & ~flips
    if exact.any():
        p[exact] = _exact_p(d[:, exact])
    if flips.any():
        p[flips] = _sign_flip_p(d[:, flips])
    if normal.any():
        p[normal] = _normal_p(d[:, normal])
    return p


def _normal_p(d: np.ndarray) -> np.ndarray:
    """Two-sided normal-approximation p of the signed-rank sum, [n, w] -> [w]: zeros dropped, average ranks,
    tie-corrected variance, no continuity correction (scipy.stats.wilcoxon's method="asymptotic")."""
    nz = d != 0
    x = np.where(nz, np.abs(d), np.inf)                     # zeros rank last, then count for nothing
    r = _st.rankdata(x, axis=0)
    t = _st.rankdata(x, method="max", axis=0) - _st.rankdata(x, method="min", axis=0) + 1   # tie group size
    m = nz.sum(0).astype(np.float64)
    r_plus = (r * (d > 0)).sum(0)
    ties = ((t ** 2 - 1) * nz).sum(0)                       # sum over groups of t^3 - t
    se = np.sqrt((m * (m + 1.) * (2. * m + 1.) - ties / 2) / 24)
    z = (r_plus - m * (m + 1.) * 0.25) / se
    return 2 * _sp.ndtr(-np.abs(z))


@lru_cache(maxsize=None)
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(R+ <= k) for k = 0 .. n(n+1)/2 with n nonzero, untied differences: exact (counts of the
    subsets of ranks 1..n with each sum, < 2^53 for n <= 50, over 2^n)."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.int64)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:k * (k + 1) // 2 + 1] += counts[:k * (k - 1) // 2 + 1].copy()
    return np.cumsum(counts) / 2.0 ** n


def _exact_p(d: np.ndarray) -> np.ndarray:
    """Exact two-sided p of the signed-rank sum, [n, w] -> [w], for columns without zeros or ties (n <= 50):
    2 P(R+ <= min(r, n(n+1)/2 - r)), capped at 1 (the distribution is symmetric)."""
    n = d.shape[0]
    r = _st.rankdata(np.abs(d), axis=0)
    r_plus = np.rint((r * (d > 0)).sum(0)).astype(np.int64)
    k = np.minimum(r_plus, n * (n + 1) // 2 - r_plus)
    return np.minimum(1.0, 2 * _signed_rank_cdf(n)[k])


def _sign_flip_p(d: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Exact two-sided p of the signed-rank sum over all 2^n sign flips, [n, w] -> [w] (n <= 13).

    Average ranks of the nonzero |d| (zeros dropped); the same count and tolerance as
    scipy.stats.permutation_test, which scipy's wilcoxon uses here but one sign flip at a time.
    """
    n = d.shape[0]
    r = _st.rankdata(np.where(d == 0, np.inf, np.abs(d)), axis=0)   # zeros rank last, then count for nothing
    r[d == 0] = 0.0
    obs = (r * (d > 0)).sum(0)
    flips = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.float64)   # [2^n, n] 1 = positive
    out = np.empty(d.shape[1])
    for j in range(0, d.shape[1], chunk):
        null, o = flips @ r[:, j:j + chunk], obs[j:j + chunk]
        gamma = np.abs(np.finfo(np.float64).eps * 100 * o)
        less, greater = (null <= o + gamma).mean(0), (null >= o - gamma).mean(0)
        out[j:j + chunk] = np.clip(2 * np.minimum(less, greater), 0.0, 1.0)
    return out


@dataclass
class PairedResult:
    """Per-neuron paired test. Arrays have one entry per neuron."""

    t: np.ndarray               # t statistic of a - b (NaN where the differences have no variance)
    p: np.ndarray               # two-sided p-value (NaN where t is NaN)
    p_adj: np.ndarray           # FDR-adjusted p-value
    significant: np.ndarray     # bool: passes FDR at q
    positive: np.ndarray        # bool: significant and a > b
    negative: np.ndarray        # bool: significant and a < b
    d: np.ndarray               # Cohen's d_z
    q: float
    method: str
    n_pairs: int
    n_excluded: int             # neurons left out of FDR (zero variance)

    def summary(self, a: str = "a", b: str = "b") -> str:
        m = len(self.t)
        s = (f"{self.significant.sum()} of {m} neurons pass FDR ({self.method.upper()}, q={self.q}) "
             f"over {self.n_pairs} pairs: {self.positive.sum()} {a} > {b}, {self.negative.sum()} {b} > {a}")
        if self.n_excluded:
            s += f"; {self.n_excluded} neurons with zero variance left out of the correction"
        return s


def paired_ttest_fdr(a, b, q: float = 0.05, method: str = "bh") -> PairedResult:
    """Paired t-test of a vs b per neuron, then FDR across neurons.

    a, b: [n_pairs, n_neurons] activations, row i of a paired with row i of b (a 1-D a or b is one neuron).
    q: the FDR level, a number with 0 < q < 1; method: "bh" or "by", in any case (stored in lower case).
    `positive` marks neurons significantly higher in a (e.g. "him" neurons when a
    holds the him sentences), `negative` those higher in b. A neuron whose differences do not
    vary beyond rounding (sd <= 1e-12 x its largest |a| or |b| for float64 input, 9.5e-7 x for
    float32: see _varies) gets t = p = d = NaN, is left out of the FDR correction and counted in
    n_excluded.
    """
    q, method = _check_q(q), _check_method(method)
    a, b, eps = _check_pair(a, b)
    d = a - b
    sd = d.std(axis=0, ddof=1)
    live = _varies(a, b, sd, eps)
    t = np.full(d.shape[1], np.nan)
    p = np.full(d.shape[1], np.nan)
    if live.any():
        res = _st.ttest_rel(a[:, live], b[:, live], axis=0)
        t[live], p[live] = res.statistic, res.pvalue
    sig, p_adj = fdr(p, q, method)
    with np.errstate(invalid="ignore"):
        dz = np.where(live, d.mean(0) / np.where(live, sd, 1), np.nan)
    return PairedResult(t=t, p=p, p_adj=p_adj, significant=sig, positive=sig & (t > 0), negative=sig & (t < 0),
                        d=dz, q=q, method=method, n_pairs=a.shape[0], n_excluded=int((~live).sum()))


def permutation_p(observed: float, null) -> float:
    """One-sided Monte-Carlo p-value (1 + #{null >= observed}) / (1 + N), N the finite null draws.

    null: [N] statistics of random draws (NaN draws are ignored). observed: the statistic under test;
    +inf gives 1/(1 + N), -inf gives 1 (every draw reaches it), NaN gives NaN, as does a null with no
    finite draw. Valid (P(p <= u) <= u) when the observed value and the draws are exchangeable under
    the null; ties count against the observed value, which keeps it valid for discrete statistics.
    """
    null = np.asarray(null, dtype=np.float64).ravel()
    null = null[np.isfinite(null)]
    if np.isnan(observed) or null.size == 0:
        return float("nan")
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


@dataclass
class SequentialP:
    """A Besag-Clifford sequential Monte-Carlo p-value (see sequential_p)."""

    p: float
    draws: int                  # null draws the rule used (the L of h/L, or n)
    exceed: int                 # of those, draws >= the observed value
    stopped: bool               # True: h draws reached it before n (p = h / draws); False: p = (1 + exceed) / (1 + n)
    h: int | None
    n: int

    def text(self) -> str:
        """'p 0.31 after 32 draws' (the kit's p format, fmt_p)."""
        return f"p {fmt_p(self.p)} after {self.draws} draws"


def sequential_p(observed: float, null, h: int | None = 10, n: int | None = None) -> SequentialP:
    """Sequential Monte-Carlo p-value (Besag & Clifford 1991) of `observed` against null draws in draw order.

    The rule, draw by draw: stop at the first draw L at which h of the draws so far are >= observed,
    p = h / L; if that never happens within n draws, p = (1 + G) / (1 + n), G the draws >= observed.
    null: [m] statistics IN THE ORDER THEY WERE DRAWN, m >= the draws the rule needs; draws after the
    stopping point are ignored, so the p is the same however the draws were batched. A NaN draw counts
    towards n but not as a draw (L, n and G count finite draws only). n: the most draws (None: all of
    null). h: None, or h > n, never stops early: p is then permutation_p over the first n draws.
    Valid at every stopping point: P(p <= u) <= u under the null when observed and the draws are
    exchangeable (ties count against observed); p is never below 1 / (1 + n). It equals the fixed-n
    p whenever fewer than h of the n draws reach observed (a strong effect).
    """
    null = np.asarray(null, dtype=np.float64).ravel()
    n = null.size if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the most null draws) must be a positive integer, got {n!r}")
    if h is not None and (isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1):
        raise ValueError(f"h (stop once h draws reach the observed value) must be a positive integer or None, "
                         f"got {h!r}")
    n, h = int(n), None if h is None else int(h)
    live = ~np.isnan(null[:n])
    hits = np.cumsum((null[:n] >= observed) & live)
    used = np.cumsum(live)
    at = np.flatnonzero(hits == h) if h is not None and not np.isnan(observed) else np.zeros(0, int)
    if at.size:
        return SequentialP(h / float(used[at[0]]), int(used[at[0]]), h, True, h, n)
    if null.size < n:
        got = int(hits[-1]) if hits.size else 0
        raise ValueError(f"the rule has not stopped after the {null.size} null draws given ({got} reach the "
                         f"observed value, h = {h}): it needs up to n = {n} draws")
    m, g = int(used[-1]), int(hits[-1])
    p = float("nan") if np.isnan(observed) or m == 0 else (1 + g) / (1 + m)
    return SequentialP(p, m, g, False, h, n)


def fmt_p(p: float) -> str:
    """The kit's one way to print a p-value: 0.042, 0.001, 5e-04 (below 0.001), nan."""
    p = float(p)
    return "nan" if not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.0e}")
