"""The figures' shared style: colours, the one p-value format, figure creation.

    COLORS      {"a": blue, "b": pink, "other": grey}: a contrast's a word, its b word, everything else
    OBS, NULL   the chosen neuron set (red) and random sets (grey) in the control figures
    word_colour(contrast, word), fmt_p(p), fig_ax(ax, size)
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..stats import fmt_p  # noqa: F401  (the one p-value format, shared with the text summaries)

COLORS = {"a": "#4c9bd6", "b": "#d65f9b", "other": "#9a9a9a"}
OBS = "#d62728"
NULL = "#9a9a9a"


def word_colour(contrast, word: str) -> str:
    """The colour of a contrast's word: COLORS["a"] for its a word (him), COLORS["b"] for its b word (her)."""
    return COLORS["a"] if contrast.sign(word) > 0 else COLORS["b"]


def fig_ax(ax, size):
    """(figure, axes): a new figure of `size` when ax is None, else ax's figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
    else:
        fig = ax.figure
    return fig, ax
