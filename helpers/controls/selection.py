"""Controls on the selection itself: which criterion, how stable, chosen where.

    pronoun_selection / mask_selection(model, tok, contrast)  -> Selection at the target word / at a [MASK]
    compare_criteria(a, b, q)      -> Criteria: t-test vs Wilcoxon, BH vs BY, Cohen's d_z
    heldout_selection(a, b, k)     -> HeldOut: select on k-1 folds of pairs, replicate on the last
    set_overlap(x, y)              -> Overlap: how many neurons two sets share, against chance
    kfold_pairs, jaccard, mean_pairwise_jaccard
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import hypergeom

from ..arch import DEFAULT_SITE
from ..selection import Selection, select_neurons
from ..stats import PairedResult, cohens_dz, fdr, fmt_p, paired_ttest_fdr, paired_wilcoxon

MIN_HELDOUT = 3   # pairs in a held-out fold, at least: a d_z on fewer is noise (and Hedges' J = 0 at 2)


def pronoun_selection(model, tokenizer, contrast="him_her", layers=None, q: float = 0.05, method: str = "bh",
                      site: str = DEFAULT_SITE) -> Selection:
    """Select at the pronoun itself, as in the lecture: the token differs between conditions."""
    return select_neurons(model, tokenizer, contrast, layers, q, method, site, at="target")


def mask_selection(model, tokenizer, contrast="him_her_context", layers=None, q: float = 0.05, method: str = "bh",
                   site: str = DEFAULT_SITE) -> Selection:
    """Select at a [MASK] put where the pronoun was: the token is the same, only the context's gender differs."""
    return select_neurons(model, tokenizer, contrast, layers, q, method, site, at="mask")


def kfold_pairs(n_pairs: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds over pair indices: [(train, test)], test folds disjoint, together covering every pair."""
    if not 2 <= k <= n_pairs:
        raise ValueError(f"k must be between 2 and the number of pairs ({n_pairs}), got {k}")
    perm = np.random.default_rng(seed).permutation(n_pairs)
    out = []
    for test in np.array_split(perm, k):
        test = np.sort(test)
        out.append((np.setdiff1d(np.arange(n_pairs), test), test))
    return out


def jaccard(x, y) -> float:
    """|x & y| / |x | y| of two boolean masks (1.0 when both are empty)."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    union = np.sum(x | y)
    return float(np.sum(x & y) / union) if union else 1.0


def mean_pairwise_jaccard(masks) -> float:
    """Mean Jaccard index over all pairs of rows of a boolean [n_sets, width] array."""
    masks = np.asarray(masks, bool)
    vals = [jaccard(masks[i], masks[j]) for i, j in combinations(range(len(masks)), 2)]
    return float(np.mean(vals)) if vals else float("nan")


@dataclass
class Overlap:
    """Overlap of two neuron sets from one layer, against what random sets of those sizes would share."""

    n_x: int
    n_y: int
    n_both: int
    expected: float             # mean overlap of two random sets of sizes n_x, n_y (hypergeometric)
    jaccard: float
    p: float                    # P(overlap >= n_both) for random sets (hypergeometric upper tail)
    labels: tuple[str, str] = ("x", "y")

    def summary(self) -> str:
        a, b = self.labels
        if not self.n_x or not self.n_y:
            return (f"{a}: {self.n_x}, {b}: {self.n_y}: "
                    + ("both sets are empty" if not (self.n_x or self.n_y) else "one set is empty")
                    + ", so there is no overlap to compare")
        return (f"{a}: {self.n_x}, {b}: {self.n_y}, both: {self.n_both} (random sets of these sizes share "
                f"{self.expected:.1f}; Jaccard {self.jaccard:.2f}, hypergeometric p = {fmt_p(self.p)})")


def set_overlap(x, y, labels=("x", "y")) -> Overlap:
    """How many neurons two boolean masks of one layer share, and how surprising that is."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    w, nx, ny, both = x.size, int(x.sum()), int(y.sum()), int((x & y).sum())
    return Overlap(nx, ny, both, nx * ny / w, jaccard(x, y), float(hypergeom.sf(both - 1, w, nx, ny)), tuple(labels))


# --- criteria: t-test vs Wilcoxon, BH vs BY, Cohen's d ------------------------------------------
@dataclass
class Criteria:
    """Which neurons pass under different criteria, from one paired data set."""

    t: np.ndarray
    p_t: np.ndarray
    p_w: np.ndarray             # Wilcoxon signed-rank p
    d: np.ndarray               # Cohen's d_z
    q: float
    passed: dict[str, np.ndarray]   # "t BH", "t BY", "Wilcoxon BH", "Wilcoxon BY", "|d| > 0.8" -> bool [width]
    n_pairs: int

    def counts(self) -> dict[str, int]:
        return {k: int(v.sum()) for k, v in self.passed.items()}

    def summary(self) -> str:
        w = len(self.t)
        parts = [f"{k}: {v} ({v / w:.0%})" for k, v in self.counts().items()]
        both = int((self.passed["t BH"] & self.passed["Wilcoxon BH"]).sum())
        return (f"of {w} neurons over {self.n_pairs} pairs (q={self.q}): " + ", ".join(parts)
                + f"; t BH and Wilcoxon BH agree on {both}")


def compare_criteria(a, b, q: float = 0.05, d_threshold: float = 0.8) -> Criteria:
    """t-test and Wilcoxon p per neuron, each with BH and BY; plus Cohen's d_z. a, b: [n_pairs, n_neurons]."""
    tt = paired_ttest_fdr(a, b, q=q, method="bh")
    p_w = paired_wilcoxon(a, b)
    d = cohens_dz(a, b)
    passed = {"t BH": tt.significant, "t BY": fdr(tt.p, q, "by")[0],
              "Wilcoxon BH": fdr(p_w, q, "bh")[0], "Wilcoxon BY": fdr(p_w, q, "by")[0],
              f"|d| > {d_threshold}": np.nan_to_num(np.abs(d)) > d_threshold}
    return Criteria(tt.t, tt.p, p_w, d, q, passed, tt.n_pairs)


# --- held-out selection ----------------------------------------------------------------------
@dataclass
class HeldOut:
    """Neurons selected on k-1 folds of pairs, checked on the held-out fold."""

    folds: list[tuple[np.ndarray, np.ndarray]]
    selected: np.ndarray        # [k, width] int8: +1 a>b, -1 b>a, 0 not selected (training folds)
    t_train: np.ndarray         # [k, width]
    t_test: np.ndarray          # [k, width]
    p_test: np.ndarray          # [k, width] two-sided p on the held-out fold
    d_train: np.ndarray         # [k, width] Cohen's d_z on training folds
    d_test: np.ndarray          # [k, width] on the held-out fold
    full: PairedResult          # all pairs at once (the in-sample analysis)
    alpha: float

    @property
    def k(self) -> int:
        return len(self.folds)

    @property
    def n_selected(self) -> np.ndarray:
        return np.sum(self.selected != 0, axis=1)

    @property
    def stability(self) -> float:
        """Mean pairwise Jaccard of the selected sets (direction included) across folds."""
        vals = []
        for i, j in combinations(range(self.k), 2):
            si, sj = self.selected[i], self.selected[j]
            union = np.sum((si != 0) | (sj != 0))
            vals.append(np.sum((si != 0) & (si == sj)) / union if union else 1.0)
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def replication(self) -> float:
        """Of all fold-selected neurons, the fraction with the same sign and p < alpha on the held-out fold."""
        sel = self.selected != 0
        ok = sel & (np.sign(self.t_test) == self.selected) & (self.p_test < self.alpha)
        return float(ok.sum() / sel.sum()) if sel.any() else float("nan")

    @property
    def same_sign(self) -> float:
        """Of all fold-selected neurons, the fraction whose held-out t has the same sign (chance: 0.5)."""
        sel = self.selected != 0
        return float((sel & (np.sign(self.t_test) == self.selected)).sum() / sel.sum()) if sel.any() else float("nan")

    def d_corrected(self) -> tuple[np.ndarray, np.ndarray]:
        """(d_train, d_test) [k, width], each times Hedges' J = 1 - 3 / (4 (n - 1) - 1) for its fold's n
        pairs. Raw d_z is biased upward, more so on few pairs (J = 0.94 at 13 pairs, 0.985 at 51), so raw
        held-out values would look larger than in-sample ones for that reason alone."""
        j = lambda n: 1 - 3 / (4 * (n - 1) - 1)  # noqa: E731
        jt = np.array([j(len(tr)) for tr, _ in self.folds])[:, None]
        js = np.array([j(len(te)) for _, te in self.folds])[:, None]
        return self.d_train * jt, self.d_test * js

    def effect_sizes(self) -> tuple[float, float]:
        """Mean d_z of the selected neurons, signed so that the selected direction is positive and
        corrected for sample size (d_corrected): on the pairs that selected them, and on held-out pairs."""
        sel = self.selected != 0
        if not sel.any():
            return float("nan"), float("nan")
        sgn = self.selected[sel]
        d_in, d_out = self.d_corrected()
        return float(np.mean(d_in[sel] * sgn)), float(np.nanmean(d_out[sel] * sgn))

    def summary(self) -> str:
        if not self.n_selected.any():
            return (f"{self.k} folds: no neuron passed FDR on any fold's training pairs (all pairs: "
                    f"{int(self.full.significant.sum())}), so there is nothing to replicate")
        d_in, d_out = self.effect_sizes()
        return (f"{self.k} folds: {int(self.n_selected.mean())} neurons selected per fold (all pairs: "
                f"{int(self.full.significant.sum())}); stability (mean Jaccard) {self.stability:.2f}; held-out "
                f"replication (same sign, p < {self.alpha}) {self.replication:.0%}, same sign {self.same_sign:.0%}; "
                f"signed d_z (corrected for sample size) in-sample {d_in:.2f} vs held-out {d_out:.2f}")


def heldout_selection(a, b, k: int = 5, q: float = 0.05, method: str = "bh", seed: int = 0,
                      alpha: float = 0.05) -> HeldOut:
    """Select neurons (t-test + FDR) on k-1 folds of pairs; test each selected neuron on the held-out fold.

    a, b: [n_pairs, n_neurons]; each held-out fold needs at least MIN_HELDOUT = 3 pairs (k <= n_pairs // 3).
    Replication criterion: same sign and uncorrected p < alpha on the
    held-out pairs (one test per selected neuron; the held-out fold is small, so this is lenient on
    false positives and harsh on power; compare it with the same-sign rate, whose chance level is 50%).
    """
    # keep the input's float type: the tests judge "no variance" at that precision (stats._varies)
    a, b = (x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x) for x in (a, b))
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be [n_pairs, n_neurons] arrays of one shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if 2 <= k <= n and n // k < MIN_HELDOUT:
        raise ValueError(f"k={k} folds of {n} pairs leave {n // k} pair(s) in the smallest held-out fold; a "
                         f"held-out d_z needs at least {MIN_HELDOUT} (Hedges' J is 0 at 2 pairs): use k <= "
                         f"{max(2, n // MIN_HELDOUT)}" + ("" if n >= 2 * MIN_HELDOUT else
                                                          f", and at least {2 * MIN_HELDOUT} pairs"))
    folds = kfold_pairs(n, k, seed)
    w = a.shape[1]
    sel = np.zeros((k, w), np.int8)
    t_tr, t_te, p_te, d_tr, d_te = (np.full((k, w), np.nan) for _ in range(5))
    for f, (tr, te) in enumerate(folds):
        r = paired_ttest_fdr(a[tr], b[tr], q=q, method=method)
        sel[f] = r.positive.astype(np.int8) - r.negative.astype(np.int8)
        t_tr[f], d_tr[f] = r.t, r.d
        h = paired_ttest_fdr(a[te], b[te], q=q, method=method)    # its t, p and d_z; its FDR is not used
        t_te[f], p_te[f], d_te[f] = h.t, h.p, h.d
    return HeldOut(folds, sel, t_tr, t_te, p_te, d_tr, d_te, paired_ttest_fdr(a, b, q=q, method=method), alpha)


