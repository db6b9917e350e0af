"""The lecture's figures. Each takes results from `helpers.lecture` and returns a Figure.

    activation_histograms(values, label, layer)   MLP values before and after GELU
    tvalues(part1)                                t of every neuron, FDR-passing ones marked by direction
    clean_logits(part2), ablation_effect(part3)   logits at the demo slots; what the lesion changed
    lecture_figures(p1, p2, p3)                   the four, {file stem: Figure}

Every title names the model the numbers came from, so a stand-in figure can
never pass for a bert-base-uncased one. Bars list the two words in the contrast's order (a, b).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.special import erf

from .style import COLORS, fig_ax, word_colour


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def activation_histograms(values: np.ndarray, model_label: str, layer: int, ax=None) -> Figure:
    """Histogram (log counts) of MLP values before and after GELU. values: any shape, pre-GELU."""
    fig, ax = fig_ax(ax, (9, 3.8))
    edges = np.linspace(-8, 8, 161)
    pre = np.asarray(values, dtype=np.float64).ravel()
    for data, label, c in ((pre, "pre-activation (before GELU)", "#555555"), (_gelu(pre), "post-activation (after GELU)", "#e07b39")):
        counts, _ = np.histogram(data, edges)
        ax.step(edges[:-1], counts, where="post", lw=2, label=label, color=c)
    ax.set(yscale="log", xlim=edges[[0, -1]], xlabel="activation value", ylabel="count (log scale)",
           title=f"{model_label}, layer {layer}: MLP activations at the target words ({pre.size:,} values)")
    ax.legend()
    return fig


def tvalues(part1, ax=None) -> Figure:
    """t-value of every neuron, with neurons passing FDR marked by direction."""
    fig, ax = fig_ax(ax, (10, 4.5))
    t, res, c = part1.test.t, part1.test, part1.contrast
    x = np.arange(len(t))
    ns = ~res.significant & np.isfinite(t)
    ax.plot(x[ns], t[ns], "x", color=COLORS["other"], alpha=0.5, ms=4, label="not significant")
    ax.plot(x[res.positive], t[res.positive], "s", mfc=COLORS["a"], mec="k", mew=0.4, ms=5,
            label=f"{c.a} > {c.b}  ({res.positive.sum()})")
    ax.plot(x[res.negative], t[res.negative], "o", mfc=COLORS["b"], mec="k", mew=0.4, ms=5,
            label=f"{c.b} > {c.a}  ({res.negative.sum()})")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlim=(-1, len(t)), xlabel="MLP neuron (index)", ylabel=f"t ({c.a} - {c.b})",
           title=f"{part1.model_label}, layer {part1.layer} ({part1.site}-GELU): "
                 f"{res.positive.sum()} \"{c.a}\" and {res.negative.sum()} \"{c.b}\" neurons "
                 f"(FDR {res.method.upper()} q={res.q})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)   # outside: no point hidden
    return fig


def _bars(ax, values: np.ndarray, part2, ylabel: str) -> None:
    """values [3 texts, 2 mask slots, 2 words] as grouped bars."""
    w = part2.words
    colors = [word_colour(part2.contrast, x) for x in w]
    labels = ["clean"] + [f"[MASK] at {s}" for s in part2.slot_words]
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            x0 = i * 3 + j * 1.1
            for k in range(values.shape[2]):
                ax.bar(x0 + (k - 0.5) * 0.45, values[i, j, k], width=0.42, color=colors[k], edgecolor="k", lw=0.5,
                       label=f"logit of '{w[k]}'" if (i, j) == (0, 0) else None)
    # two-level axis: the slot under each pair of bars, the text under each group
    ticks = [i * 3 + j * 1.1 for i in range(values.shape[0]) for j in range(values.shape[1])]
    ax.set_xticks(ticks, [f"'{part2.slot_words[j]}' slot" for _ in range(values.shape[0])
                          for j in range(values.shape[1])], fontsize=8)
    groups = ax.secondary_xaxis("bottom")
    groups.set_xticks([i * 3 + 0.55 for i in range(values.shape[0])],
                      [f"\n\n{'clean text' if i == 0 else labels[i]}" for i in range(values.shape[0])], fontsize=9)
    groups.tick_params(length=0)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))   # outside: no bar hidden


def clean_logits(part2, ax=None) -> Figure:
    """Logits of both words at both slots, for the clean text and each masked text."""
    fig, ax = fig_ax(ax, (10, 4.2))
    _bars(ax, part2.logits, part2, "logit (its zero is arbitrary:\ncompare the two bars of a slot)")
    ax.set_title(f"{part2.model_label}: logits of '{part2.words[0]}' and '{part2.words[1]}' (no ablation)\n"
                 f"\"{part2.texts[0]}\"", fontsize=10)
    return fig


def ablation_effect(part3, figsize=(14, 4.6)) -> Figure:
    """Left: clean minus ablated logits (positive = the ablation lowered the logit). Right: the choice
    itself, logit(right word) - logit(wrong word) at each [MASK], clean vs ablated."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize, gridspec_kw={"width_ratios": [2.2, 1]})
    p2 = part3.part2
    _bars(ax0, part3.delta, p2, "Δ logit (clean − ablated)")
    ax0.set_title(f"{part3.model_label}, layer {part3.layer}: change after {part3.mode}-ablating "
                  f"'{p2.slot_words[0]}' neurons at its slot and '{p2.slot_words[1]}' neurons at its slot",
                  fontsize=10)
    before, after = (np.array(v) for v in zip(*[(b, a) for _, _, b, a in part3.logit_diffs()]))
    x = np.arange(len(before))
    ax1.bar(x - 0.2, before, 0.38, color=COLORS["other"], edgecolor="k", lw=0.5, label="clean")
    ax1.bar(x + 0.2, after, 0.38, color=[word_colour(p2.contrast, w) for w in p2.slot_words],
            edgecolor="k", lw=0.5)
    for xi, b, a in zip(x, before, after):
        ax1.annotate(f"{b:+.2f} → {a:+.2f}", (xi, max(b, a, 0)), textcoords="offset points", xytext=(0, 4),
                     ha="center", fontsize=8)
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_xticks(x, [f"[MASK] = {w}" for w in p2.slot_words], fontsize=8)
    ax1.set(ylabel="logit(right) − logit(wrong)", ylim=(min(0, before.min(), after.min()) * 1.15 - 0.1,
                                                         max(0, before.max(), after.max()) * 1.25 + 0.1),
            title="the choice at each [MASK] (> 0: right word wins)")
    # the ablated bars take the colour of the word at their slot: one legend entry per colour
    handles = [Patch(facecolor=COLORS["other"], edgecolor="k", lw=0.5, label="clean")] + \
        [Patch(facecolor=word_colour(p2.contrast, w), edgecolor="k", lw=0.5,
               label=f"'{w}' neurons zeroed" if part3.mode == "zero" else f"'{w}' neurons ablated ({part3.mode})")
         for w in p2.slot_words]
    ax1.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def lecture_figures(p1, p2, p3) -> dict:
    """The lecture's four figures, {file stem: matplotlib Figure}."""
    return {"1_activation_histograms": activation_histograms(np.concatenate([p1.acts_a, p1.acts_b]),
                                                             p1.model_label, p1.layer),
            "1_tvalues": tvalues(p1), "2_clean_logits": clean_logits(p2), "3_ablation_effect": ablation_effect(p3)}
