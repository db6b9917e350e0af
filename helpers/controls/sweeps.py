"""Lesion sweeps: more neurons, other layers, held-out texts.

    dose_response(model, tok, selection, layer, evalset)  -> DoseResponse: top-k evalset.target neurons vs random
    layer_sweep(model, tok, selection, evalset)                 -> LayerSweep: FDR counts and lesion per layer
    heldout_lesion(model, tok, selection, layer, evalset, k)    -> HeldOutLesion: chosen on training pairs,
                                                                   lesioned at training vs held-out texts
    dose_response_with(ablator, scores), log_grid(max_k)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..selection import Selection, word_neurons, word_scores
from ..stats import fmt_p, holm, paired_ttest_fdr
from ..stimuli import EvalSet
from .nulls import Ablator, LesionResult, lesion_test, permutation_p, random_neuron_sets
from .selection import kfold_pairs


def log_grid(max_k: int, n: int = 10) -> np.ndarray:
    """About n integers from 1 to max_k, evenly spaced on a log scale (distinct, sorted)."""
    if max_k < 1:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.logspace(0, np.log10(max_k), n)).astype(int))


@dataclass
class DoseResponse:
    """Top-k neurons (by signed t) ablated for each k, against random sets of k."""

    model_label: str
    layer: int
    mode: str
    target: str
    foil: str
    ks: np.ndarray              # [n_k]
    observed: np.ndarray        # [n_k] mean drop of the top-k set
    null: np.ndarray            # [n_k, n_draws] mean drop of each random set of k
    n_significant: int          # how many of the ranked neurons pass FDR (marked on the plot)

    @property
    def p(self) -> np.ndarray:
        return np.array([permutation_p(o, n) for o, n in zip(self.observed, self.null)])

    def band(self, lo: float = 5, hi: float = 95) -> tuple[np.ndarray, np.ndarray]:
        return np.percentile(self.null, lo, axis=1), np.percentile(self.null, hi, axis=1)

    def summary(self) -> str:
        if not len(self.ks):
            return (f"{self.model_label}, layer {self.layer}: no neuron is more active for '{self.target}' than for "
                    f"'{self.foil}', so there is no top-k set and nothing to lesion")
        lo, hi = self.band()
        rows = [f"k={k}: {o:.2f} [{a:.2f}, {b:.2f}]" for k, o, a, b in zip(self.ks, self.observed, lo, hi)]
        none = "" if self.n_significant else " (none passes FDR: ranked by t alone)"
        return (f"{self.model_label}, layer {self.layer}, top-k '{self.target}' neurons {self.mode}-ablated{none}, "
                f"drop in logit({self.target})-logit({self.foil}) [random 5-95%]: " + "; ".join(rows))


def dose_response_with(ablator, scores, ks=None, n_draws: int = 200, seed: int = 0,
                       n_significant: int = 0) -> DoseResponse:
    """Ablate the k highest-`scores` neurons (only those with score > 0) for each k, plus random sets of k.

    scores: [width], larger = more target-like (e.g. sign * t). ks default: a log grid up to
    the number of positive scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.flatnonzero(np.isfinite(scores) & (scores > 0))
    order = cand[np.argsort(-scores[cand], kind="stable")]
    ks = log_grid(order.size) if ks is None else np.asarray(sorted({int(k) for k in ks}), dtype=int)
    if ks.size and ks.max() > order.size:
        raise ValueError(f"k={ks.max()} asked for but only {order.size} neurons have a positive score")
    obs, null = [], []
    clean = np.asarray(ablator.clean, float)
    for i, k in enumerate(ks):
        top = np.zeros(ablator.width, dtype=bool)
        top[order[:k]] = True
        sets = np.vstack([top[None], random_neuron_sets(ablator.width, int(k), n_draws, seed + i)])
        drops = (clean[None] - ablator.diffs(sets)).mean(1)
        obs.append(drops[0])
        null.append(drops[1:])
    return DoseResponse(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, ks,
                        np.array(obs, float), np.array(null, float).reshape(len(ks), n_draws), int(n_significant))


def dose_response(model, tokenizer, selection: Selection, layer: int, evalset: EvalSet, ks=None,
                  n_draws: int = 200, seed: int = 0, mode: str = "zero", values=None) -> DoseResponse:
    """The top-k neurons for evalset.target (ranked by selection.word_scores) ablated at the eval [MASK]s,
    k on a log grid, each against random sets of k."""
    ab = Ablator(model, tokenizer, layer, evalset.texts, evalset.positions, evalset.target, evalset.foil, mode,
                 values, seed=seed)
    test = selection.tests[layer]
    return dose_response_with(ab, word_scores(test, selection.contrast, evalset.target), ks, n_draws, seed,
                              int(word_neurons(test, selection.contrast, evalset.target).sum()))


@dataclass
class LayerSweep:
    """Per layer: neurons passing FDR (both directions) and the lesion effect of the target-word set."""

    model_label: str
    where: str
    target: str
    foil: str
    layers: list[int]
    width: list[int]
    n_pos: list[int]            # a > b neurons per layer
    n_neg: list[int]            # b > a neurons per layer
    results: dict[int, LesionResult | None]   # None where the set is empty
    labels: tuple[str, str] = ("a", "b")

    def frac_significant(self) -> np.ndarray:
        return (np.array(self.n_pos) + np.array(self.n_neg)) / np.array(self.width)

    def p_holm(self) -> dict[int, float]:
        """Holm-adjusted permutation p per lesioned layer: testing several layers and reporting the best
        is a multiple comparison. Holm controls the family-wise error under any dependence."""
        done = [L for L in self.layers if self.results[L] is not None]
        return dict(zip(done, holm([self.results[L].p for L in done])))

    def summary(self) -> str:
        a, b = self.labels
        rows = []
        ph = self.p_holm()
        for L, w, npos, nneg in zip(self.layers, self.width, self.n_pos, self.n_neg):
            r = self.results[L]
            if r is None:
                n_target = npos if self.target == a else nneg
                eff = (f"no '{self.target}' neuron passed, nothing to lesion" if n_target == 0 else "not lesioned")
            else:
                eff = (f"drop {r.observed:.2f} vs random {r.null.mean():.2f} "
                       f"(z {r.z:.1f}, p {fmt_p(r.p)}, Holm {fmt_p(ph[L])})")
            rows.append(f"L{L}: {npos} {a}>{b}, {nneg} {b}>{a} ({(npos + nneg) / w:.0%}), {eff}")
        head = f"{self.model_label}, selected at the {self.where}, lesion for '{self.target}'"
        if ph:
            n = next(r.n_draws for r in self.results.values() if r is not None)
            head += f" (Holm over the {len(ph)} lesioned layers; {n} draws, so no p below {fmt_p(1 / (n + 1))})"
        return head + ": " + "; ".join(rows)


def layer_sweep(model, tokenizer, selection: Selection, evalset: EvalSet, n_draws: int = 200, seed: int = 0,
                mode: str = "zero", values=None, max_fraction: float = 1.0) -> LayerSweep:
    """For every layer of `selection`: FDR counts, and the evalset target's neurons lesioned against the null.

    values: per layer {layer: values} for mean/resample. max_fraction: skip the lesion where
    the set holds more than this fraction of the layer (random sets would be nearly the same set).
    n_draws=0: counts only, no lesion.
    """
    c = selection.contrast
    results, widths = {}, []
    for L in selection.layers:
        widths.append(len(selection.tests[L].t))
        mask = selection.neurons(L, evalset.target)
        if n_draws == 0 or mask.sum() == 0 or mask.mean() > max_fraction:
            results[L] = None
            continue
        vals = values.get(L) if isinstance(values, dict) else values
        results[L] = lesion_test(model, tokenizer, L, mask, evalset, n_draws=n_draws, seed=seed, mode=mode,
                                 values=vals, label=f"'{evalset.target}' neurons")
    return LayerSweep(selection.model_label, selection.where, evalset.target, evalset.foil, selection.layers,
                      widths, [int(selection.tests[L].positive.sum()) for L in selection.layers],
                      [int(selection.tests[L].negative.sum()) for L in selection.layers], results, (c.a, c.b))


@dataclass
class HeldOutLesion:
    """Per fold: neurons chosen on the training pairs, lesioned at the [MASK] texts of training vs held-out pairs."""

    model_label: str
    layer: int
    where: str
    target: str
    foil: str
    n_neurons: list[int]
    in_sample: list[LesionResult | None]
    held_out: list[LesionResult | None]

    def _mean(self, rs, attr) -> float:
        v = [getattr(r, attr) for r in rs if r is not None]
        return float(np.mean(v)) if v else float("nan")

    def summary(self) -> str:
        if not any(self.n_neurons):
            return (f"{self.model_label}, layer {self.layer}: no '{self.target}' neuron passed on any training fold, "
                    f"so there is nothing to lesion")
        return (f"{self.model_label}, layer {self.layer}, '{self.target}' neurons selected at the {self.where} on "
                f"{len(self.n_neurons)} training folds ({int(np.mean(self.n_neurons))} per fold): drop in-sample "
                f"{self._mean(self.in_sample, 'observed'):.2f} (z {self._mean(self.in_sample, 'z'):.1f}) vs held-out "
                f"{self._mean(self.held_out, 'observed'):.2f} (z {self._mean(self.held_out, 'z'):.1f}); "
                f"random sets: {self._mean(self.held_out, 'null_mean'):.2f}")


def heldout_lesion(model, tokenizer, selection: Selection, layer: int, evalset: EvalSet, k: int = 5, seed: int = 0,
                   n_draws: int = 200, mode: str = "zero", values=None, match_size: bool = True) -> HeldOutLesion:
    """k-fold over the selection's pairs: choose the evalset target's neurons on k-1 folds, lesion at the
    [MASK] texts of the training pairs (in-sample) and of the held-out pairs.

    evalset must have one text per pair, in pair order (e.g. masked_set of the context contrast).
    match_size: evaluate in-sample on a random subset of the training pairs as large as the held-out
    fold (seeded), so both estimates average over the same number of texts.
    """
    a, b = selection.acts_a[layer], selection.acts_b[layer]
    if len(evalset) != a.shape[0]:
        raise ValueError(f"evalset has {len(evalset)} texts but the selection has {a.shape[0]} pairs; "
                         f"held-out evaluation needs one text per pair")
    ins, outs, sizes = [], [], []
    rng = np.random.default_rng(seed)
    for f, (tr, te) in enumerate(kfold_pairs(a.shape[0], k, seed)):
        r = paired_ttest_fdr(a[tr], b[tr], q=selection.tests[layer].q, method=selection.tests[layer].method)
        mask = word_neurons(r, selection.contrast, evalset.target)
        sizes.append(int(mask.sum()))
        tr_eval = np.sort(rng.choice(tr, size=len(te), replace=False)) if match_size else tr
        for rows, sink in ((tr_eval, ins), (te, outs)):
            sink.append(None if not mask.any() else lesion_test(
                model, tokenizer, layer, mask, evalset.subset(rows), n_draws=n_draws, seed=seed + f, mode=mode,
                values=values, label=f"'{evalset.target}' neurons"))
    return HeldOutLesion(selection.model_label, layer, selection.where, evalset.target, evalset.foil, sizes, ins, outs)


