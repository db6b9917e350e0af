"""Choosing neurons: a paired t-test per neuron with FDR, at every layer, and the one map from a word to its neurons.

    select_neurons(model, tok, contrast, layers, q, method, site, at)  -> Selection
    word_neurons(test, contrast, word)  -> bool mask [n_neurons]: the neurons significantly MORE active for
                                           `word` (the t statistic is a - b, so a's neurons have t > 0)
    word_scores(test, contrast, word)   -> [n_neurons] t signed so that larger = more `word`-like (top-k)
    Selection.neurons(layer, word)      -> the same, at one layer of a selection

Every place in the kit that needs "the 'her' neurons" calls word_neurons (or word_scores to rank them);
nothing else reads the sign of t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arch import DEFAULT_SITE, check_layer, model_label, n_layers
from .capture import contrast_activations
from .stats import PairedResult, paired_ttest_fdr
from .stimuli import Contrast, as_contrast

WHERE = {"target": "target word", "mask": "[MASK]"}


def word_scores(test: PairedResult, contrast: Contrast, word: str) -> np.ndarray:
    """[n_neurons] t signed so that larger = more active for `word` (t for a's neurons, -t for b's): the
    ranking for "the top-k 'her' neurons". NaN where the neuron could not be tested."""
    return contrast.sign(word) * test.t


def word_neurons(test: PairedResult, contrast: Contrast, word: str) -> np.ndarray:
    """Boolean mask [n_neurons] of the neurons that pass FDR and are more active for `word` than for the other
    word of `contrast`. test must come from paired_ttest_fdr(a, b) with a = the contrast's a sentences."""
    return test.positive if contrast.sign(word) > 0 else test.negative


@dataclass
class Selection:
    """Per-neuron paired tests at every captured layer, for one contrast, read at the target word or at a [MASK]."""

    model_label: str
    contrast: Contrast
    where: str                  # "target word" or "[MASK]"
    site: str
    acts_a: dict[int, np.ndarray]   # layer -> [n_pairs, n_neurons]
    acts_b: dict[int, np.ndarray]
    tests: dict[int, PairedResult]

    @property
    def layers(self) -> list[int]:
        return sorted(self.tests)

    def neurons(self, layer: int, word: str) -> np.ndarray:
        """Boolean mask of the neurons significantly more active for `word` at `layer` (word_neurons)."""
        return word_neurons(self.tests[layer], self.contrast, word)

    def summary(self, layer: int) -> str:
        c = self.contrast
        return (f"{self.model_label}, layer {layer}, at the {self.where}: "
                + self.tests[layer].summary(c.a, c.b))


def select_neurons(model, tokenizer, contrast="him_her", layers=None, q: float = 0.05, method: str = "bh",
                   site: str = DEFAULT_SITE, at: str = "target", progress=None) -> Selection:
    """Capture both halves of `contrast` (all `layers` in one pass; default every layer), then a paired
    t-test of a vs b per neuron with FDR at each layer.

    at: "target" reads at the target word (the lecture: the token itself differs between a and b);
    "mask" at a [MASK] put in its place (the token is the same, only the context differs).
    """
    c = as_contrast(contrast)
    layers = list(range(n_layers(model))) if layers is None else [check_layer(model, x) for x in layers]
    a, b = contrast_activations(model, tokenizer, c, layers, site=site, at=at, progress=progress)
    tests = {L: paired_ttest_fdr(a[L], b[L], q=q, method=method) for L in layers}
    return Selection(model_label(model), c, WHERE[at], site, a, b, tests)
