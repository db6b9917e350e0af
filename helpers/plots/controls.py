"""Figures for the lesion controls (notebook 04). Each takes a result from helpers.controls and returns a Figure.

    criteria(crit, label, layer)             neurons passing t/Wilcoxon x BH/BY, and the two p-values per neuron
    null_distribution(result)                the chosen set's drop against random sets; per-text before/after
    modes(results)                           zero / mean / resample ablation, each against its own null
    dose_response(dr)                        top-k drop against the random-set band, k on a log axis
    layer_sweep(sweep, other=None)           share of neurons passing FDR, and lesion effect, per layer
    draws_per_layer(sweep)                   random sets the sequential p drew in each layer, out of at most n
    selection_comparison(sel_p, sel_m, layer, word, results)  t at the pronoun vs at the [MASK]; both lesions
    heldout(ho, hol)                         in-sample vs held-out effect sizes and lesion effects
    lesion_tests(results, p_adjusted, name)  several lesion tests side by side, each against its own null

Every title names the model (and layer) the numbers came from. An empty neuron set (nothing passed the
criterion, result.empty) is drawn as a figure, or a column, that says so in words instead of numbers.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .style import COLORS, NULL, OBS, fmt_p


def _message(ax, text: str, title: str | None = None) -> None:
    """An axes that holds only a sentence (e.g. why there is nothing to plot)."""
    ax.set(xticks=[], yticks=[])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", wrap=True, fontsize=10, color="k")
    if title:
        ax.set_title(title)


def _nothing(r) -> str:
    """The figure's sentence for an empty LesionResult."""
    return f"no {r.label.strip()} passed the criterion,\nso there is nothing to lesion"


def criteria(crit, model_label: str, layer: int, where: str = "pronoun", figsize=(12, 4.2)) -> Figure:
    """Left: neurons passing each criterion. Right: -log10 p of the t-test against the Wilcoxon test."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize, gridspec_kw={"width_ratios": [1.3, 1]})
    counts = crit.counts()
    w = len(crit.t)
    names = list(counts)
    bars = ax0.bar(range(len(names)), [counts[n] for n in names],
                   color=["#4c72b0", "#2a4a80", "#dd8452", "#a0522d", "#55a868"][: len(names)], edgecolor="k", lw=0.5)
    for b, n in zip(bars, names):
        ax0.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{counts[n]}\n({counts[n] / w:.0%})",
                 ha="center", va="bottom", fontsize=8)
    ax0.set_xticks(range(len(names)), names, fontsize=8)
    ax0.set(ylabel="neurons passing", ylim=(0, w * 1.15),
            title=f"{model_label}, layer {layer}, at the {where}: {w} neurons, q={crit.q}")
    ax0.axhline(w, color="k", lw=0.5, ls=":")
    with np.errstate(divide="ignore"):
        x, y = -np.log10(crit.p_t), -np.log10(crit.p_w)
    both = crit.passed["t BH"] & crit.passed["Wilcoxon BH"]
    one = crit.passed["t BH"] ^ crit.passed["Wilcoxon BH"]
    none = ~(both | one)
    for m, c, lab in ((none, NULL, "neither"), (one, "#dd8452", "only one"), (both, "#4c72b0", "both (BH)")):
        ax1.plot(x[m], y[m], ".", color=c, ms=3, alpha=0.6, label=f"{lab}: {m.sum()}")
    ax1.set(xlabel="-log10 p, paired t-test", ylabel="-log10 p, Wilcoxon signed-rank",
            title="each dot: one neuron (Wilcoxon p has a floor: all\ndifferences of one sign give its smallest p)")
    ax1.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    return fig


def null_distribution(result, figsize=(12, 4.2)) -> Figure:
    """Left: histogram of the random sets' mean drop, the chosen set's as a red line.
    Right: logit(target) - logit(foil) per text, before vs after the lesion."""
    r = result
    if r.empty:
        fig, ax = plt.subplots(figsize=(figsize[0] * 0.6, figsize[1] * 0.6))
        _message(ax, _nothing(r), f"{r.model_label}, layer {r.layer}: 0 {r.label.strip()}")
        fig.tight_layout()
        return fig
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize, gridspec_kw={"width_ratios": [1.4, 1]})
    ax0.hist(r.null, bins=40, color=NULL, edgecolor="w", lw=0.3, label=f"{r.n_draws} random sets of {r.n_neurons}")
    lo, hi = r.band()
    ax0.axvspan(lo, hi, color=NULL, alpha=0.15, label="random 5-95%")
    ax0.axvline(r.observed, color=OBS, lw=2.5, label=f"{r.label}: {r.observed:.2f}")
    ax0.set(xlabel=f"mean drop in logit({r.target}) - logit({r.foil})  (clean - lesioned)", ylabel="random sets",
            title=f"{r.model_label}, layer {r.layer}, {r.mode} ablation: z = {r.z:.1f}, {r.p_text()}")
    ax0.legend(fontsize=8)
    flipped = (r.clean > 0) & (r.ablated <= 0)
    ax1.plot(r.clean[~flipped], r.ablated[~flipped], "o", mfc="#8fd0d0", mec="k", ms=7, label="text")
    if flipped.any():
        ax1.plot(r.clean[flipped], r.ablated[flipped], "o", mfc=OBS, mec="k", ms=7,
                 label=f"flipped ({flipped.sum()})")
    vals = np.concatenate([r.clean, r.ablated])
    lo, hi = vals.min() - 0.5, vals.max() + 0.5
    ax1.plot([lo, hi], [lo, hi], "k--", lw=0.7, label="no change")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.axvline(0, color="k", lw=0.5)
    ax1.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"clean logit({r.target}) - logit({r.foil})",
            ylabel="after the lesion", title=f"each dot: one [MASK] text ({r.n_texts})")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _null_column(ax, x, r, color=OBS, label=None):
    """The chosen set's drop (diamond) over its random sets' 5-95% band and median; an empty set: a note."""
    if r.empty:
        ax.text(x, 0, "0 neurons:\nnothing\nto lesion", ha="center", va="bottom", fontsize=8, color=NULL)
        return
    lo, hi = r.band()
    ax.plot([x, x], [lo, hi], color=NULL, lw=8, alpha=0.5, solid_capstyle="butt",
            label="random sets 5-95%" if label else None)
    ax.plot([x - 0.15, x + 0.15], [np.median(r.null)] * 2, color="k", lw=1,
            label="random sets, median" if label else None)
    ax.plot(x, r.observed, "D", color=color, mec="k", ms=8, label=label)


def modes(results: dict, figsize=(7, 4.2)) -> Figure:
    """One column per ablation mode: the chosen set's drop (diamond) over the random sets' band."""
    fig, ax = plt.subplots(figsize=figsize)
    first = next(iter(results.values()))
    if all(r.empty for r in results.values()):
        _message(ax, _nothing(first), f"{first.model_label}, layer {first.layer}: 0 {first.label.strip()}")
        fig.tight_layout()
        return fig
    labelled = False
    for i, (m, r) in enumerate(results.items()):
        _null_column(ax, i, r, label=None if labelled or r.empty else "chosen set")
        labelled |= not r.empty
        if not r.empty:
            ax.text(i + 0.2, r.observed, f"z={r.z:.1f}\np={fmt_p(r.p)}\n{r.n_draws} draws", fontsize=8,
                    va="center")
    ax.set_xticks(range(len(results)), [f"{m}" for m in results])
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlim=(-0.6, len(results) - 0.1), ylabel=f"mean drop in logit({first.target}) - logit({first.foil})",
           title=f"{first.model_label}, layer {first.layer}: {first.n_neurons} {first.label}, three ablations")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def lesion_tests(results: dict, p_adjusted=None, adjusted_name: str = "adjusted", figsize=(10, 4.2)) -> Figure:
    """One column per lesion test (results: {label: LesionResult}, e.g. one per contrast and word): the
    chosen set's drop (diamond) over its random sets' band, annotated with p and, where given, the
    p adjusted for the whole family (p_adjusted: one per result, e.g. stats.holm; adjusted_name
    labels it, e.g. "Holm")."""
    if not results:
        raise ValueError("lesion_tests needs at least one result")
    if p_adjusted is not None and len(p_adjusted) != len(results):
        raise ValueError(f"{len(results)} results but {len(p_adjusted)} adjusted p-values")
    fig, ax = plt.subplots(figsize=figsize)
    first = next(iter(results.values()))
    labelled = False
    for i, (name, r) in enumerate(results.items()):
        _null_column(ax, i, r, label=None if labelled or r.empty else "chosen set")
        labelled |= not r.empty
        if r.empty:
            continue
        note = f"p={fmt_p(r.p)}" + (f"\n{adjusted_name} {fmt_p(p_adjusted[i])}" if p_adjusted is not None else "")
        ax.text(i + 0.18, r.observed, note, fontsize=8, va="center")
    ax.set_xticks(range(len(results)), [str(n) for n in results], fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    layers = sorted({r.layer for r in results.values()})
    where = f"layer {layers[0]}" if len(layers) == 1 else "layers " + ", ".join(map(str, layers))
    ax.set(xlim=(-0.6, len(results) - 0.2), ylabel="mean drop in logit(expected) - logit(other)",
           title=f"{first.model_label}, {where}: {first.mode}-ablating each word's neurons at its [MASK]s")
    if labelled:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def dose_response(dr, figsize=(8, 4.4)) -> Figure:
    """Drop for the top-k neurons (line) against random sets of k (band: 5-95%, dashed: median)."""
    fig, ax = plt.subplots(figsize=figsize)
    if not len(dr.ks):
        _message(ax, f"no neuron is more active for '{dr.target}' than for '{dr.foil}',\nso there is no top-k set "
                     f"and nothing to lesion", f"{dr.model_label}, layer {dr.layer}: dose-response")
        fig.tight_layout()
        return fig
    lo, hi = dr.band()
    ax.fill_between(dr.ks, lo, hi, color=NULL, alpha=0.35, label="random sets of k, 5-95%")
    ax.plot(dr.ks, dr.median(), "--", color="k", lw=1, label="random sets, median")
    ax.plot(dr.ks, dr.observed, "o-", color=OBS, label=f"top-k '{dr.target}' neurons by t")
    if dr.n_significant:
        ax.axvline(dr.n_significant, color=COLORS["b"], ls=":", label=f"{dr.n_significant} pass FDR")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel="k neurons ablated (log scale)",
           ylabel=f"mean drop in logit({dr.target}) - logit({dr.foil})",
           title=f"{dr.model_label}, layer {dr.layer}: dose-response ({dr.mode} ablation)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_sweep(sweep, other=None, figsize=(12, 4.2)) -> Figure:
    """Left: share of neurons passing FDR per layer (and `other` selection's, dashed).
    Right: the target's neurons lesioned in each layer against the random band."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize)
    for s, ls in ((sweep, "-"), (other, "--")):
        if s is None:
            continue
        a, b = s.labels
        w = np.array(s.width)
        ax0.plot(s.layers, np.array(s.n_pos) / w, "s" + ls, color=COLORS["a"], label=f"{a} > {b}, at the {s.where}")
        ax0.plot(s.layers, np.array(s.n_neg) / w, "o" + ls, color=COLORS["b"], label=f"{b} > {a}, at the {s.where}")
    ax0.set(xlabel="layer", ylabel="fraction of the layer's neurons passing FDR", ylim=(0, 1),
            xticks=sweep.layers, title=f"{sweep.model_label}: how many neurons 'select'")
    ax0.legend(fontsize=8)
    band_labelled = False
    for s, dx, mk in ((sweep, -0.1, "D"), (other, 0.1, "^")):
        if s is None:
            continue
        done = [L for L in s.layers if s.results[L] is not None]
        a, _ = s.labels
        for L, n in zip(s.layers, s.n_pos if s.target == a else s.n_neg):
            if n == 0 and s is sweep:      # nothing passed in this layer: say so where its marker would be
                ax1.text(L + dx, 0, f"0 '{s.target}'\nneurons", ha="center", va="bottom", fontsize=7, color=NULL)
        for L in done:
            r = s.results[L]
            lo, hi = r.band()
            ax1.plot([L + dx] * 2, [lo, hi], color=NULL, lw=6, alpha=0.5, solid_capstyle="butt",
                     label=None if band_labelled else "random sets 5-95%")
            band_labelled = True
            ax1.plot(L + dx, r.observed, mk, color=OBS if s is sweep else "#8c564b", mec="k", ms=7,
                     label=f"selected at the {s.where}" if L == done[0] else None)
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set(xlabel="layer", xticks=sweep.layers, ylabel=f"mean drop in logit({sweep.target}) - logit({sweep.foil})",
            title=f"'{sweep.target}' neurons of each layer ablated at the [MASK]")
    if band_labelled:
        ax1.legend(fontsize=8)
    else:
        a, _ = sweep.labels
        counts = sweep.n_pos if sweep.target == a else sweep.n_neg
        why = (f"no layer has a '{sweep.target}' neuron that passed,\nso there is nothing to lesion"
               if not any(counts) else "no lesions run (n_draws=0)")
        ax1.text(0.5, 0.5, why, transform=ax1.transAxes, ha="center", color=NULL)
    fig.tight_layout()
    return fig


def draws_per_layer(sweep, figsize=(8, 4.2)) -> Figure:
    """Bars: the random sets each layer's lesion test drew before its sequential p was settled, against the
    most it could draw (dashed), each bar labelled with its p. Few draws: random sets often do as much as the
    chosen one, and more draws could not have made its p small; all n: fewer than h random sets ever did
    (a strong effect), and the p is exactly the fixed-n p."""
    fig, ax = plt.subplots(figsize=figsize)
    done = [L for L in sweep.layers if sweep.results[L] is not None]
    title = f"{sweep.model_label}: random sets drawn per layer for the '{sweep.target}' lesion"
    if not done:
        _message(ax, "no layer was lesioned (no neuron passed, or n_draws=0),\nso no random sets were drawn", title)
        fig.tight_layout()
        return fig
    rs = [sweep.results[L] for L in done]
    n, h = max(r.max_draws or r.n_draws for r in rs), rs[0].stop_at
    for full, color, lab in ((False, NULL, f"stopped: {h} random sets reached the drop (p = {h} / drawn)"),
                             (True, OBS, "used all n: the p is the fixed-n p")):
        pick = [(L, r) for L, r in zip(done, rs) if (r.n_draws >= n) == full]
        if pick:
            ax.bar([L for L, _ in pick], [r.n_draws for _, r in pick], color=color, edgecolor="k", lw=0.5,
                   label=lab)
    for L, r in zip(done, rs):
        ax.text(L, r.n_draws, f"{r.n_draws}\np={fmt_p(r.p)}", ha="center", va="bottom", fontsize=7)
    ax.axhline(n, color="k", ls="--", lw=0.8, label=f"at most n = {n}")
    for L in sweep.layers:
        if sweep.results[L] is None:
            ax.text(L, 0, "not\nlesioned", ha="center", va="bottom", fontsize=7, color=NULL)
    rule = f"stop once h = {h} random sets reach the drop" if h else "fixed n: no early stop"
    ax.set(xlabel="layer", xticks=sweep.layers, yscale="log", ylim=(1, n * 10),
           ylabel="random sets drawn (log scale)", title=f"{title}\n(sequential p: {rule})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def selection_comparison(sel_p, sel_m, layer: int, word: str, results=None, figsize=(12, 4.4)) -> Figure:
    """Left: each neuron's t at the pronoun vs at the [MASK]. Right: each set's lesion against its null."""
    ncol = 2 if results else 1
    fig, axes = plt.subplots(1, ncol, figsize=figsize if results else (6.5, 4.4), squeeze=False)
    ax0 = axes[0, 0]
    tp, tm = sel_p.tests[layer].t, sel_m.tests[layer].t
    inp, inm = sel_p.neurons(layer, word), sel_m.neurons(layer, word)
    cats = ((~inp & ~inm, NULL, "neither"), (inp & ~inm, COLORS["a"], "pronoun only"),
            (~inp & inm, "#55a868", "[MASK] only"), (inp & inm, OBS, "both"))
    for m, c, lab in cats:
        ax0.plot(tp[m], tm[m], ".", color=c, ms=4, alpha=0.7, label=f"{lab}: {m.sum()}")
    ax0.axhline(0, color="k", lw=0.5)
    ax0.axvline(0, color="k", lw=0.5)
    c = sel_p.contrast
    ax0.set(xlabel=f"t ({c.a} - {c.b}) at the pronoun", ylabel=f"t ({c.a} - {c.b}) at the [MASK]",
            title=f"{sel_p.model_label}, layer {layer}: '{word}' neurons chosen two ways")
    ax0.legend(fontsize=8, markerscale=3)
    if results:
        ax1 = axes[0, 1]
        labelled = False
        for i, (name, r) in enumerate(results.items()):
            _null_column(ax1, i, r, label=None if labelled or r.empty else "chosen set")
            labelled |= not r.empty
            if not r.empty:
                ax1.text(i + 0.2, r.observed, f"{r.n_neurons} neurons\nz={r.z:.1f}, p={fmt_p(r.p)}", fontsize=8,
                         va="center")
        r0 = next(iter(results.values()))
        ax1.set_xticks(range(len(results)), list(results))
        ax1.axhline(0, color="k", lw=0.5)
        ax1.set(xlim=(-0.5, len(results) - 0.1), ylabel=f"mean drop in logit({r0.target}) - logit({r0.foil})",
                title=f"lesioned at {r0.n_texts} held-out [MASK] texts")
        if labelled:
            ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heldout(ho, hol=None, model_label: str = "", layer: int | None = None, figsize=(12, 4.2)) -> Figure:
    """Left: signed Cohen's d of fold-selected neurons, on the selecting pairs vs held-out pairs.
    Right (hol): per fold, the lesion drop on training-pair texts vs held-out texts, with null bands."""
    ncol = 2 if hol is not None else 1
    fig, axes = plt.subplots(1, ncol, figsize=figsize if ncol == 2 else (6.5, 4.2), squeeze=False)
    ax0 = axes[0, 0]
    sel = ho.selected != 0
    where = f", layer {layer}" if layer is not None else ""
    if not sel.any():
        _message(ax0, "no neuron passed FDR on any fold's training pairs,\nso there is nothing to replicate",
                 f"{model_label}{where}: {ho.k}-fold selection")
    else:
        _heldout_d(ax0, ho, sel, f"{model_label}{where}: {ho.k}-fold selection, stability {ho.stability:.2f}")
    if hol is not None:
        _heldout_lesions(axes[0, 1], hol)
    fig.tight_layout()
    return fig


def _heldout_d(ax0, ho, sel, title):
    sgn = ho.selected[sel]
    d_in, d_out = (d[sel] * sgn for d in ho.d_corrected())
    lim = np.nanmax(np.abs(np.concatenate([d_in, d_out]))) * 1.05
    ax0.plot(d_in, d_out, ".", color="#4c72b0", ms=3, alpha=0.4)
    ax0.plot([0, lim], [0, lim], "k--", lw=0.7, label="held-out = in-sample")
    ax0.axhline(0, color="k", lw=0.5)
    mi, mo = ho.effect_sizes()
    ax0.plot(mi, mo, "D", color=OBS, mec="k", ms=8, label=f"mean: {mi:.2f} -> {mo:.2f}")
    ax0.set(xlabel="signed d_z on the pairs that selected the neuron\n(corrected for sample size)",
            ylabel="signed d_z on held-out pairs (corrected)", title=title)
    ax0.legend(fontsize=8)


def _heldout_lesions(ax1, hol):
    title = f"'{hol.target}' neurons chosen at the {hol.where} of training pairs"
    if not any(hol.n_neurons):
        _message(ax1, f"no '{hol.target}' neuron passed on any training fold,\nso there is nothing to lesion", title)
        return
    seen = set()
    for f, (ri, ro) in enumerate(zip(hol.in_sample, hol.held_out)):
        if ri is None and ro is None:
            ax1.text(f, 0, "0 neurons:\nnothing\nto lesion", ha="center", va="bottom", fontsize=8, color=NULL)
        for r, dx, c, lab in ((ri, -0.15, "#ff9896", "in-sample texts"), (ro, 0.15, OBS, "held-out texts")):
            if r is None:
                continue
            lo, hi = r.band()
            band = "random sets 5-95%"
            ax1.plot([f + dx] * 2, [lo, hi], color=NULL, lw=6, alpha=0.5, solid_capstyle="butt",
                     label=None if band in seen else band)
            ax1.plot(f + dx, r.observed, "D", color=c, mec="k", ms=7, label=None if lab in seen else lab)
            seen |= {band, lab}
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set(xticks=range(len(hol.n_neurons)),
            xticklabels=[f"fold {f}\n{n} neurons" for f, n in enumerate(hol.n_neurons)],
            ylabel=f"mean drop in logit({hol.target}) - logit({hol.foil})", title=title)
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
