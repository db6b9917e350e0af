"""The lecture's three parts as functions (the notebooks, the report and the CLI call these).

    part1(model, tok, contrast, layer, q, method, site) -> Part1   capture + paired t-test + FDR
    part2(model, tok, contrast, item)                  -> Part2   logits at the demo [MASK]s
    part3(model, tok, part1, part2, mode)              -> Part3   ablate each slot's word's neurons at its slot
    demo_items(contrast), two_slot_items(contrast)     the demo sentences among a contrast's test lines

Conventions (the kit's, README "Conventions"): logit arrays list the two words in the contrast's
order (contrast.words = (a, b)); a prediction or a lesion is reported as logit(expected) -
logit(other), so a lesion that works is a drop.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .arch import DEFAULT_SITE, check_layer, default_layer, model_label
from .capture import contrast_activations
from .lesion import ablate_neurons, ablation_values
from .readout import diff_text, logits_at
from .selection import word_neurons
from .stats import PairedResult, paired_ttest_fdr
from .stimuli import MASK, Contrast, as_contrast, mask_positions


@dataclass
class Part1:
    """Part 1's result: the MLP values of every pair at one layer and the paired test per neuron."""

    model_label: str
    contrast: Contrast
    layer: int
    site: str
    acts_a: np.ndarray          # [n_pairs, n_neurons] at the target word, condition a
    acts_b: np.ndarray          # same, condition b
    test: PairedResult          # t = a - b per neuron

    def neurons(self, word: str) -> np.ndarray:
        """Boolean mask of `word`'s neurons: significantly more active for `word` (selection.word_neurons)."""
        return word_neurons(self.test, self.contrast, word)

    def summary(self) -> str:
        return (f"Part 1 | {self.model_label}, layer {self.layer}, {self.site}-GELU, "
                + self.test.summary(self.contrast.a, self.contrast.b))


def part1(model, tokenizer, contrast="him_her", layer: int | None = None, q: float = 0.05,
          method: str = "bh", site: str = DEFAULT_SITE, wordpiece: str = "last") -> Part1:
    """Activations at the target word of every pair (a word split into pieces: its `wordpiece` piece), then a
    paired t-test per neuron with FDR."""
    c = as_contrast(contrast)
    layer = default_layer(model) if layer is None else check_layer(model, layer)
    a, b = contrast_activations(model, tokenizer, c, [layer], site=site, wordpiece=wordpiece)
    return Part1(model_label(model), c, layer, site, a[layer], b[layer],
                 paired_ttest_fdr(a[layer], b[layer], q=q, method=method))


@dataclass
class Part2:
    """Part 2's result: the logits of both words at both slots of one demo sentence."""

    model_label: str
    contrast: Contrast
    texts: list[str]            # [clean, slot 0 masked, slot 1 masked]
    slot_words: list[str]       # the word that belongs in each slot, e.g. ["her", "him"]
    positions: list[int]        # token index of each slot (the same in all three texts)
    logits: np.ndarray          # [3 texts, 2 slots, 2 words], words in contrast.words order

    @property
    def words(self) -> tuple[str, str]:
        """The words whose logits are read, in the kit's order: contrast.words = (a, b)."""
        return self.contrast.words

    def diff(self, logits: np.ndarray | None = None) -> list[float]:
        """logit(expected) - logit(other) at each masked slot (of `logits`, default the clean ones)."""
        lg = self.logits if logits is None else logits
        out = []
        for j, w in enumerate(self.slot_words):
            e, o = self.words.index(w), self.words.index(self.contrast.foil(w))
            out.append(float(lg[1 + j, j, e] - lg[1 + j, j, o]))
        return out

    @property
    def correct(self) -> list[bool]:
        """At each masked slot, does the word that belongs there beat the other word?"""
        return [d > 0 for d in self.diff()]

    def summary(self) -> str:
        parts = []
        for j, (w, d) in enumerate(zip(self.slot_words, self.diff())):
            shown = ", ".join(f"{x} {self.logits[1 + j, j, k]:.2f}" for k, x in enumerate(self.words))
            parts.append(f"[MASK]={w}: {shown}, {diff_text(w, self.contrast.foil(w), d)} "
                         f"({'right' if d > 0 else 'WRONG'})")
        return f"Part 2 | {self.model_label}: " + "; ".join(parts)


def demo_items(contrast) -> list[tuple[str, list[tuple[str, str]]]]:
    """The contrast's test lines grouped by the sentence they fill in to: [(clean, [(masked, word)])]."""
    c = as_contrast(contrast)
    groups: dict[str, list[tuple[str, str]]] = {}
    for text, word in c.tests:
        groups.setdefault(text.replace(MASK, word), []).append((text, word))
    return list(groups.items())


def two_slot_items(contrast) -> list:
    """demo_items with one `a` slot and one `b` slot: what Parts 2 and 3 show."""
    c = as_contrast(contrast)
    return [g for g in demo_items(c) if len(g[1]) == 2 and {w for _, w in g[1]} == {c.a, c.b}]


def part2(model, tokenizer, contrast="him_her", item: int = 0) -> Part2:
    """Logits of both words at both slots of demo sentence `item` (clean and each slot masked)."""
    c = as_contrast(contrast)
    items = two_slot_items(c)
    if not items:
        raise ValueError(f"{c.name}: no demo sentence with one {c.a!r} slot and one {c.b!r} slot among its test lines")
    if not 0 <= item < len(items):
        raise ValueError(f"item must be 0..{len(items) - 1} ({len(items)} demo sentences in {c.name})")
    clean, masked = items[item]
    texts = [clean] + [t for t, _ in masked]
    positions = [p[0] for p in mask_positions(tokenizer, texts[1:])]
    logits = logits_at(model, tokenizer, texts, words=list(c.words), same_positions=positions)
    return Part2(model_label(model), c, texts, [w for _, w in masked], positions, logits)


@dataclass
class Part3:
    """Part 3's result: Part 2's logits again, with each slot's word's neurons ablated at that slot."""

    model_label: str
    layer: int
    mode: str
    part2: Part2
    n_ablated: list[int]        # neurons ablated at each slot
    logits: np.ndarray          # [3, 2, 2] with the ablation (words in contrast.words order)
    width: int = 0              # neurons in the layer

    @property
    def delta(self) -> np.ndarray:
        """clean - ablated logits [3, 2, 2] (positive: the ablation lowered the logit)."""
        return self.part2.logits - self.logits

    def logit_diffs(self) -> list[tuple[str, str, float, float]]:
        """Per masked slot: (expected word, other word, expected - other before, after the ablation)."""
        p2 = self.part2
        return [(w, p2.contrast.foil(w), b, a) for w, b, a in zip(p2.slot_words, p2.diff(), p2.diff(self.logits))]

    def summary(self) -> str:
        p2, parts = self.part2, []
        for j, (w, other, before, after) in enumerate(self.logit_diffs()):
            k = p2.words.index(w)
            done = {"zero": "zeroed", "mean": "mean-ablated", "resample": "resampled"}.get(self.mode, self.mode)
            parts.append(f"{w} slot ({self.n_ablated[j]} of {self.width} '{w}' neurons {done}): logit({w}) "
                         f"{p2.logits[1 + j, j, k]:.2f} -> {self.logits[1 + j, j, k]:.2f}, "
                         f"{diff_text(w, other, before, after)}")
        return f"Part 3 | {self.model_label}, layer {self.layer}: " + "; ".join(parts)


def part3(model, tokenizer, p1: Part1, p2: Part2, mode: str = "zero") -> Part3:
    """Ablate each slot's word's neurons (e.g. the "her" neurons) at that slot of the text where it is masked,
    and nowhere else. mean: each neuron's mean value at the target words of the contrast's pairs, at p1's site."""
    if p1.contrast.name != p2.contrast.name:
        raise ValueError(f"part1 used {p1.contrast.name!r} but part2 used {p2.contrast.name!r}")
    values = ablation_values(model, tokenizer, p1.contrast, p1.layer, mode, site=p1.site)
    with ExitStack() as stack:
        for j, w in enumerate(p2.slot_words):
            rows = [[], [], []]            # one entry per text: only the text where slot j is masked
            rows[1 + j] = [p2.positions[j]]
            stack.enter_context(ablate_neurons(model, p1.layer, p1.neurons(w), positions=rows, mode=mode,
                                               values=values, site=p1.site, verbose=False))
        ablated = logits_at(model, tokenizer, p2.texts, words=list(p2.words), same_positions=p2.positions)
    return Part3(p1.model_label, p1.layer, mode, p2, [int(p1.neurons(w).sum()) for w in p2.slot_words], ablated,
                 int(p1.test.t.size))
