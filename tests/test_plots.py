"""helpers.plots (lecture and controls figures): figures a student can read.

Checked on the rendered figure: no two tick labels of an axis overlap, every legend entry's colour is
drawn in its panel, and the title names the model."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import helpers  # noqa: E402
from helpers import plots  # noqa: E402


def tick_label_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of x tick labels (main and secondary x axes) whose drawn boxes come within 6 px."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)  # a bare Figure too
    canvas.draw()
    renderer = canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        axes = [ax] + [c for c in ax.child_axes]
        for a in axes:
            labels = [t for t in a.get_xticklabels() if t.get_text() and t.get_visible()]
            boxes = [t.get_window_extent(renderer).padded(3) for t in labels]   # 3 px apart at least
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if boxes[i].overlaps(boxes[j]):
                        bad.append((labels[i].get_text(), labels[j].get_text()))
    return bad


def legend_colours_missing(fig) -> list[str]:
    """Legend entries drawn as a patch whose face colour nothing in their panel has (bars, bands)."""
    missing = []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        drawn = {tuple(np.round(p.get_facecolor(), 3)) for p in ax.patches}
        drawn |= {tuple(np.round(c, 3)) for coll in ax.collections for c in np.atleast_2d(coll.get_facecolor())}
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            if not hasattr(handle, "get_facecolor") or not isinstance(handle, matplotlib.patches.Patch):
                continue
            if tuple(np.round(to_rgba(handle.get_facecolor()), 3)) not in drawn:
                missing.append(text.get_text())
    return missing


@pytest.fixture(scope="module")
def parts(tiny_model, tokenizer):
    contrast = helpers.load_contrast("him_her")
    p1 = helpers.lecture.part1(tiny_model, tokenizer, contrast, layer=2)
    p2 = helpers.lecture.part2(tiny_model, tokenizer, contrast, item=0)
    p3 = helpers.lecture.part3(tiny_model, tokenizer, p1, p2, mode="zero")
    return p1, p2, p3


def test_lecture_figures_have_readable_ticks_and_honest_legends(parts):
    p1, p2, p3 = parts
    for fig in (plots.tvalues(p1), plots.clean_logits(p2), plots.ablation_effect(p3)):
        assert tick_label_overlaps(fig) == []
        assert legend_colours_missing(fig) == []
        assert any("tiny-bert" in ax.get_title() for ax in fig.axes)
        plt.close(fig)


def test_ablation_figure_legend_names_each_slots_set(parts):
    """The right panel colours each ablated bar by its slot's word; the legend has one entry per colour."""
    _, p2, p3 = parts
    fig = plots.ablation_effect(p3)
    texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert texts[0] == "clean"
    assert [w for w in p2.slot_words if any(f"'{w}' neurons" in t for t in texts)] == list(p2.slot_words)
    plt.close(fig)


def test_checkers_catch_what_they_look_for():
    """The two checks above fail on a figure with the faults they look for."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([0, 1], [1, 2], color="grey", label="drawn")
    ax.bar([2], [1], color="red")
    ax.set_xticks([0, 0.05], ["a long label", "another long label"])
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(facecolor="grey", label="drawn"), Patch(facecolor="blue", label="not drawn")])
    assert tick_label_overlaps(fig) == [("a long label", "another long label")]
    assert legend_colours_missing(fig) == ["not drawn"]
    plt.close(fig)
