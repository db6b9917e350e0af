"""Lesion sweeps: more neurons, other layers, held-out texts.

    dose_response(model, tok, selection, layer, evalset)  -> DoseResponse: top-k evalset.target neurons vs random
    layer_sweep(model, tok, selection, evalset)                 -> LayerSweep: FDR counts and lesion per layer
    heldout_lesion(model, tok, selection, layer, evalset, k)    -> HeldOutLesion: chosen on training pairs,
                                                                   lesioned at training vs held-out texts
    dose_response_with(ablator, scores), log_grid(max_k)

Every lesion p here is the sequential Monte-Carlo p of helpers.controls.nulls (Besag & Clifford): up to
n_draws random sets, stopped once stop_at of them reach the chosen set's drop (stop_at=None: all n_draws);
summaries say how many draws each p used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..selection import Selection, word_neurons, word_scores
from ..stats import SequentialP, fmt_p, holm, paired_ttest_fdr, sequential_p
from ..stimuli import EvalSet
from .draws import STOP_AT, SetStream, check_draws, draw_null
from .nulls import Ablator, LesionResult, draws_text, lesion_test_with
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
    null: list                  # n_k arrays [draws used for that k]: mean drop of each random set of k, in draw order
    n_significant: int          # how many of the ranked neurons pass FDR (marked on the plot)
    max_draws: int | None = None    # n: the most random sets per k (None: as many as were drawn)
    stop_at: int | None = None      # h of the sequential rule (None: every k used all its draws)

    @property
    def rules(self) -> list[SequentialP]:
        """Per k: the sequential p and the draws it used (helpers.stats.sequential_p)."""
        return [sequential_p(o, n, self.stop_at, self.max_draws or max(len(n), 1))
                for o, n in zip(self.observed, self.null)]

    @property
    def p(self) -> np.ndarray:
        return np.array([r.p for r in self.rules])

    @property
    def draws(self) -> np.ndarray:
        """[n_k] random sets each k's p used."""
        return np.array([len(n) for n in self.null], dtype=int)

    def band(self, lo: float = 5, hi: float = 95) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([np.percentile(n, lo) for n in self.null]),
                np.array([np.percentile(n, hi) for n in self.null]))

    def median(self) -> np.ndarray:
        """[n_k] the random sets' median drop per k."""
        return np.array([np.median(n) for n in self.null])

    def summary(self) -> str:
        if not len(self.ks):
            return (f"{self.model_label}, layer {self.layer}: no neuron is more active for '{self.target}' than for "
                    f"'{self.foil}', so there is no top-k set and nothing to lesion")
        lo, hi = self.band()
        rows = [f"k={k}: {o:.2f} [{a:.2f}, {b:.2f}] {r.text()}"
                for k, o, a, b, r in zip(self.ks, self.observed, lo, hi, self.rules)]
        none = "" if self.n_significant else " (none passes FDR: ranked by t alone)"
        most = self.max_draws or int(self.draws.max())
        return (f"{self.model_label}, layer {self.layer}, top-k '{self.target}' neurons {self.mode}-ablated{none}, "
                f"drop in logit({self.target})-logit({self.foil}) [random 5-95%], p from up to {most} random sets "
                f"(no p below {fmt_p(1 / (most + 1))}): " + "; ".join(rows))


def dose_response_with(ablator, scores, ks=None, n_draws: int = 200, seed: int = 0,
                       n_significant: int = 0, stop_at: int | None = STOP_AT) -> DoseResponse:
    """Ablate the k highest-`scores` neurons (only those with score > 0) for each k, plus random sets of k.

    scores: [width], larger = more target-like (e.g. sign * t). ks default: a log grid up to
    the number of positive scores. n_draws: the most random sets per k; stop_at: the sequential
    rule's h (stop once that many reach the top-k drop; None: all n_draws).
    """
    n_draws, stop_at = check_draws(n_draws, stop_at)
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
        d = draw_null(ablator, top, SetStream(ablator.width, int(k), seed + i), n_draws, stop_at)
        obs.append(float(np.mean(clean - d.chosen)))
        null.append((clean[None] - d.null).mean(1))
    return DoseResponse(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, ks,
                        np.array(obs, float), null, int(n_significant), n_draws, stop_at)


def dose_response(model, tokenizer, selection: Selection, layer: int, evalset: EvalSet, ks=None,
                  n_draws: int = 200, seed: int = 0, mode: str = "zero", values=None,
                  stop_at: int | None = STOP_AT) -> DoseResponse:
    """The top-k neurons for evalset.target (ranked by selection.word_scores) ablated at the eval [MASK]s,
    k on a log grid, each against up to n_draws random sets of k (sequential p, stop_at: its h)."""
    n_draws, stop_at = check_draws(n_draws, stop_at)
    ab = Ablator(model, tokenizer, layer, evalset.texts, evalset.positions, evalset.target, evalset.foil, mode,
                 values, seed=seed)
    test = selection.tests[layer]
    return dose_response_with(ab, word_scores(test, selection.contrast, evalset.target), ks, n_draws, seed,
                              int(word_neurons(test, selection.contrast, evalset.target).sum()), stop_at)


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
        """Holm-adjusted p per lesioned layer: testing several layers and reporting the best is a multiple
        comparison. Holm controls the family-wise error under any dependence, for any valid p-values, the
        sequential ones included (each is valid at its stopping point: P(p <= u) <= u under the null)."""
        done = [L for L in self.layers if self.results[L] is not None]
        return dict(zip(done, holm([self.results[L].p for L in done])))

    @property
    def draws(self) -> dict[int, int]:
        """Random sets each lesioned layer's p used {layer: draws} (the sequential rule stops early where
        the set does no more than random ones)."""
        return {L: r.n_draws for L, r in self.results.items() if r is not None}

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
                       f"(z {r.z:.1f}, {r.p_text(' ')}, Holm {fmt_p(ph[L])}){r.layer_note()}")
            rows.append(f"L{L}: {npos} {a}>{b}, {nneg} {b}>{a} ({(npos + nneg) / w:.0%}), {eff}")
        head = f"{self.model_label}, selected at the {self.where}, lesion for '{self.target}'"
        if ph:
            done = [r for r in self.results.values() if r is not None]
            n = max(r.max_draws or r.n_draws for r in done)
            rule = (f"up to {n} draws, stopping once {done[0].stop_at} reach the drop" if done[0].stop_at
                    else f"{n} draws")
            head += (f" (Holm over the {len(ph)} lesioned layers; {rule}, so no p below {fmt_p(1 / (n + 1))}; "
                     f"{sum(self.draws.values())} draws in all)")
        return head + ": " + "; ".join(rows)


def layer_sweep(model, tokenizer, selection: Selection, evalset: EvalSet, n_draws: int = 200, seed: int = 0,
                mode: str = "zero", values=None, max_fraction: float = 1.0,
                stop_at: int | None = STOP_AT) -> LayerSweep:
    """For every layer of `selection`: FDR counts, and the evalset target's neurons lesioned against the null.

    values: per layer {layer: values} for mean/resample. max_fraction: skip the lesion where
    the set holds more than this fraction of the layer (random sets would be nearly the same set).
    n_draws: the most random sets per layer (n_draws=0: counts only, no lesion); stop_at: the sequential
    rule's h (None: all n_draws in every layer). The layers share one clean pass; top-1 changes are not
    counted (the sweep does not report them; lesion_test does).
    """
    if not (isinstance(n_draws, (int, np.integer)) and not isinstance(n_draws, bool) and n_draws == 0):
        n_draws, stop_at = check_draws(n_draws, stop_at, "n_draws (0: counts only)")
    c = selection.contrast
    results, widths = {}, []
    base = None
    for L in selection.layers:
        widths.append(len(selection.tests[L].t))
        mask = selection.neurons(L, evalset.target)
        if n_draws == 0 or mask.sum() == 0 or mask.mean() > max_fraction:
            results[L] = None
            continue
        vals = values.get(L) if isinstance(values, dict) else values
        if base is None:
            base = Ablator(model, tokenizer, L, evalset.texts, evalset.positions, evalset.target, evalset.foil, mode,
                           vals, seed=seed)
        results[L] = lesion_test_with(base.with_layer(L, mode, vals), mask, n_draws, seed,
                                      label=f"'{evalset.target}' neurons", top1=False, stop_at=stop_at)
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

    def p(self, which: str = "held_out") -> list[float]:
        """The sequential p of each fold's lesion ("held_out" or "in_sample"; NaN where nothing was lesioned)."""
        return [float("nan") if r is None else r.p for r in getattr(self, which)]

    def summary(self) -> str:
        if not any(self.n_neurons):
            return (f"{self.model_label}, layer {self.layer}: no '{self.target}' neuron passed on any training fold, "
                    f"so there is nothing to lesion")
        ps = ", ".join(fmt_p(p) for p in self.p("held_out"))
        return (f"{self.model_label}, layer {self.layer}, '{self.target}' neurons selected at the {self.where} on "
                f"{len(self.n_neurons)} training folds ({int(np.mean(self.n_neurons))} per fold): drop in-sample "
                f"{self._mean(self.in_sample, 'observed'):.2f} (z {self._mean(self.in_sample, 'z'):.1f}) vs held-out "
                f"{self._mean(self.held_out, 'observed'):.2f} (z {self._mean(self.held_out, 'z'):.1f}); "
                f"random sets: {self._mean(self.held_out, 'null_mean'):.2f}; held-out p per fold {ps}, "
                f"{draws_text(self.in_sample + self.held_out)}")


def heldout_lesion(model, tokenizer, selection: Selection, layer: int, evalset: EvalSet, k: int = 5, seed: int = 0,
                   n_draws: int = 200, mode: str = "zero", values=None, match_size: bool = True,
                   stop_at: int | None = STOP_AT) -> HeldOutLesion:
    """k-fold over the selection's pairs: choose the evalset target's neurons on k-1 folds, lesion at the
    [MASK] texts of the training pairs (in-sample) and of the held-out pairs.

    evalset must have one text per pair, in pair order (e.g. masked_set of the context contrast).
    match_size: evaluate in-sample on a random subset of the training pairs as large as the held-out
    fold (seeded), so both estimates average over the same number of texts. n_draws, stop_at: as in
    lesion_test, for each of the 2 k lesion tests (top-1 changes are not counted: the summary omits them).
    """
    n_draws, stop_at = check_draws(n_draws, stop_at)
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
            if not mask.any():
                sink.append(None)
                continue
            ev = evalset.subset(rows)
            ab = Ablator(model, tokenizer, layer, ev.texts, ev.positions, ev.target, ev.foil, mode, values,
                         seed=seed + f)
            sink.append(lesion_test_with(ab, mask, n_draws, seed + f, label=f"'{evalset.target}' neurons",
                                         top1=False, stop_at=stop_at))
    return HeldOutLesion(selection.model_label, layer, selection.where, evalset.target, evalset.foil, sizes, ins, outs)


