"""The explorer's figure (matplotlib only, no widgets): t-values on top, the logits before/after below.

    figure(result) -> matplotlib Figure (no pyplot state: safe to redraw inside a widget)
"""
from __future__ import annotations

from matplotlib.figure import Figure

from ..plots.lecture import tvalues
from ..plots.style import word_colour
from ..stimuli import MASK


def figure(res) -> Figure:
    """The panel's figure for an ExplorerResult: t-values with the ablated neurons ringed; logits below."""
    fig = Figure(figsize=(11, 7.6), layout="constrained")
    ax_t, ax_l = fig.subplots(2, 1, height_ratios=[1, 1])
    tvalues(res.part1, ax=ax_t)
    t = res.part1.test.t
    if len(res.neurons):
        ax_t.plot(res.neurons, t[res.neurons], "o", mfc="none", mec="k", ms=9, mew=1.2,
                  label=f"ablated ({len(res.neurons)})")
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)   # outside: no point hidden
    ax_t.title.set_fontsize(10)
    _logits(ax_l, res)
    return fig


def _logits(ax, res) -> None:
    """Grouped bars: per [MASK], the two words' logits before and after (words in contrast.words order)."""
    if res.before is None:
        ax.set_axis_off()
        ax.text(0.5, 0.5, res.error or "no sentence", ha="center", va="center", wrap=True, fontsize=11,
                color="#b00020", transform=ax.transAxes)
        return
    words = res.words
    colors = [word_colour(res.contrast, w) for w in words]
    ticks, labels = [], []
    for m, (e, o, before, after) in enumerate(res.diffs()):
        for s, (vals, when, d) in enumerate(((res.before, "before", before), (res.after, "after", after))):
            x0 = m * 3.2 + s * 1.2
            for k in range(2):
                ax.bar(x0 + (k - 0.5) * 0.5, vals[m, k], width=0.46, color=colors[k], edgecolor="k", lw=0.5,
                       hatch="//" if when == "after" else None, alpha=1 if when == "before" else 0.75,
                       label=f"logit of '{words[k]}'" if (m, s) == (0, 0) else None)
                ax.text(x0 + (k - 0.5) * 0.5, vals[m, k], f"{vals[m, k]:.2f}", ha="center",
                        va="bottom" if vals[m, k] >= 0 else "top", fontsize=8)
            ticks.append(x0)
            labels.append(f"{MASK} {m + 1} {when}\n{e}-{o} {d:+.2f}")
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("logit at the [MASK]")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    sent = res.sentence if len(res.sentence) < 110 else res.sentence[:107] + "..."
    expected = res.contrast.expected(res.sentence)
    quote = f"\u201c{sent}\u201d" + (f"  (expected: '{expected}')" if expected else "")
    ax.set_title(f"{res.part1.model_label}, layer {res.layer}: {res.mode}-ablating {len(res.neurons)} "
                 f"neurons ({res.set_label}) at the {MASK}\n{quote}", fontsize=10)
    ax.margins(y=0.12)
