"""The lecture's three parts as functions (the notebooks, the report and the CLI call these).

    part1(model, tok, contrast, layer, q, method, site) -> Part1   capture + paired t-test + FDR
    part2(model, tok, contrast, item)                  -> Part2   logits at the demo [MASK]s (a causal LM:
                                                                  the next token after the text before each)
    part3(model, tok, part1, part2, mode)              -> Part3   ablate each slot's word's neurons at its slot
    demo_items(contrast), two_slot_items(contrast)     the demo sentences among a contrast's test lines
    train_mode_note(model), TrainModeWarning            a model left in train mode: each part warns (once per line)

Conventions (the kit's, README "Conventions"): logit arrays list the two words in the contrast's
order (contrast.words = (a, b)); a prediction or a lesion is reported as logit(expected) -
logit(other), so a lesion that works is a drop.

Causal LMs (GPT-2, Llama): the prediction at a [MASK] is the next-token prediction from the text before
it (the right context is dropped), read, and lesioned, at the last token before the slot
(readout.prediction_positions); Part 2's summary says so.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .arch import DEFAULT_SITE, check_layer, default_layer, is_causal, model_label, site_label
from .capture import contrast_activations
from .lesion import ablate_neurons, ablation_values
from .readout import diff_text, logits_at, next_token_position
from .selection import word_neurons
from .stats import PairedResult, paired_ttest_fdr
from .stimuli import MASK, Contrast, as_contrast, fill_mask, mask_positions, text_key


class TrainModeWarning(UserWarning):
    """A part ran on a model left in train mode (its numbers stand: the kit measures in eval mode)."""


def train_mode_note(model) -> str:
    """"" for a model in eval mode, else one line saying it was left in train mode (any submodule). The kit
    measures in eval mode (hooks.eval_mode: dropout off, the mode put back), so its numbers stand, but the
    model's own forward passes vary from run to run until model.eval()."""
    if not any(m.training for m in model.modules()):
        return ""
    return (f"note: {model_label(model)} is in train mode (dropout on): dropout changes every forward pass of "
            f"your own. The kit measured these numbers in eval mode (dropout off) and left the mode as it was; "
            f"call model.eval() so that your own passes give the same numbers.")


def _tell_train_mode(model) -> None:
    """A TrainModeWarning at the caller's line of part1/2/3 when `model` is in train mode."""
    note = train_mode_note(model)
    if note:
        warnings.warn(note, TrainModeWarning, stacklevel=3)


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
    site_name: str = ""         # how the summary names the site ("pre-GELU"; a gated MLP: "down_proj input")

    def neurons(self, word: str) -> np.ndarray:
        """Boolean mask of `word`'s neurons: significantly more active for `word` (selection.word_neurons)."""
        return word_neurons(self.test, self.contrast, word)

    def summary(self) -> str:
        return (f"Part 1 | {self.model_label}, layer {self.layer}, {self.site_name or self.site + '-GELU'}, "
                + self.test.summary(self.contrast.a, self.contrast.b))


def part1(model, tokenizer, contrast="him_her", layer: int | None = None, q: float = 0.05,
          method: str = "bh", site: str = DEFAULT_SITE, wordpiece: str = "last") -> Part1:
    """Activations at the target word of every pair (a word split into pieces: its `wordpiece` piece), then a
    paired t-test per neuron with FDR."""
    c = as_contrast(contrast)
    _tell_train_mode(model)
    layer = default_layer(model) if layer is None else check_layer(model, layer)
    a, b = contrast_activations(model, tokenizer, c, [layer], site=site, wordpiece=wordpiece)
    return Part1(model_label(model), c, layer, site, a[layer], b[layer],
                 paired_ttest_fdr(a[layer], b[layer], q=q, method=method), site_label(model, site))


@dataclass
class Part2:
    """Part 2's result: the logits of both words at both slots of one demo sentence."""

    model_label: str
    contrast: Contrast
    texts: list[str]            # [clean, slot 0 masked, slot 1 masked]
    slot_words: list[str]       # the word that belongs in each slot, e.g. ["her", "him"]
    positions: list[int]        # token index where each slot is read in the text where it is masked: the
                                # [MASK] (a masked LM; the same in all three texts) or the token before it (causal)
    logits: np.ndarray          # [3 texts, 2 slots, 2 words], words in contrast.words order
    rows: list[list[int]] | None = None   # per text, where each slot is read (None: `positions` in every text)
    causal: bool = False        # a causal LM: each slot predicted from the text before it

    @property
    def read_at(self) -> list[list[int]]:
        """Per text, the token where each slot is read (the kit's `positions`, one entry per text)."""
        return self.rows if self.rows is not None else [list(self.positions) for _ in self.texts]

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
        note = (f"Part 2 | {self.model_label} is a causal LM: the prediction at [MASK] is the next token after the "
                f"text before it; the right context is dropped\n" if self.causal else "")
        return f"{note}Part 2 | {self.model_label}: " + "; ".join(parts)


def demo_items(contrast) -> list[tuple[str, list[tuple[str, str]]]]:
    """The contrast's test lines grouped by the sentence they fill in to: [(clean, [(masked, word)])]. Lines
    are compared as stimuli.text_key does (case and spacing ignored: "[MASK] left, and she stayed." filled with
    "he" is "He left, and [MASK] stayed." filled with "she"); clean is the first line filled in (fill_mask)."""
    c = as_contrast(contrast)
    groups: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for text, word in c.tests:
        clean = fill_mask(text, word)
        groups.setdefault(text_key(clean), (clean, []))[1].append((text, word))
    return list(groups.values())


def two_slot_items(contrast) -> list:
    """demo_items with one `a` slot and one `b` slot: what Parts 2 and 3 show."""
    c = as_contrast(contrast)
    return [g for g in demo_items(c) if len(g[1]) == 2 and {w for _, w in g[1]} == {c.a, c.b}]


def part2(model, tokenizer, contrast="him_her", item: int = 0) -> Part2:
    """Logits of both words at both slots of demo sentence `item` (clean and each slot masked). A causal LM
    reads each slot at the last token before it: its next-token prediction from the text before the slot."""
    c = as_contrast(contrast)
    _tell_train_mode(model)
    items = two_slot_items(c)
    if not items:
        raise ValueError(f"{c.name}: no demo sentence with one {c.a!r} slot and one {c.b!r} slot among its test lines")
    if not 0 <= item < len(items):
        raise ValueError(f"item must be 0..{len(items) - 1} ({len(items)} demo sentences in {c.name})")
    clean, masked = items[item]
    texts, slot_words = [clean] + [t for t, _ in masked], [w for _, w in masked]
    if is_causal(model):
        rows = _causal_rows(tokenizer, texts, slot_words)
        positions = [rows[1 + j][j] for j in range(len(slot_words))]
    else:
        positions = [p[0] for p in mask_positions(tokenizer, texts[1:])]
        rows = None
    logits = logits_at(model, tokenizer, texts, [positions] * len(texts) if rows is None else rows,
                       words=list(c.words))
    return Part2(model_label(model), c, texts, slot_words, positions, logits, rows, rows is not None)


def _causal_rows(tokenizer, texts: list[str], slot_words: list[str]) -> list[list[int]]:
    """Per text [clean, slot 0 masked, slot 1 masked], the last token before each slot (readout.next_token_position).
    Slot j starts where texts[1 + j] has its [MASK]; in the text where the other slot k is masked, and k comes
    first, it starts len([MASK]) - len(word k) characters later."""
    start = [texts[1 + j].index(MASK) for j in range(len(slot_words))]
    rows = []
    for i, text in enumerate(texts):
        shift = [0] * len(start)
        if i > 0:
            k = i - 1
            shift = [len(MASK) - len(slot_words[k]) if start[k] < start[j] else 0 for j in range(len(start))]
        rows.append([next_token_position(tokenizer, text, s + d, i) for s, d in zip(start, shift)])
    return rows


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
    and nowhere else (a causal LM: at the token before the slot, where it is predicted). mean: each neuron's
    mean value at the target words of the contrast's pairs, at p1's site."""
    if p1.contrast.name != p2.contrast.name:
        raise ValueError(f"part1 used {p1.contrast.name!r} but part2 used {p2.contrast.name!r}")
    _tell_train_mode(model)
    values = ablation_values(model, tokenizer, p1.contrast, p1.layer, mode, site=p1.site)
    if tokenizer.pad_token is None:     # no batch (GPT-2, Llama): one text per pass, each with its own lesion
        ablated = np.concatenate([_ablated(model, tokenizer, p1, p2, mode, values, [i])
                                  for i in range(len(p2.texts))])
    else:
        ablated = _ablated(model, tokenizer, p1, p2, mode, values, list(range(len(p2.texts))))
    return Part3(p1.model_label, p1.layer, mode, p2, [int(p1.neurons(w).sum()) for w in p2.slot_words], ablated,
                 int(p1.test.t.size))


def _ablated(model, tokenizer, p1: Part1, p2: Part2, mode: str, values, batch: list[int]) -> np.ndarray:
    """Logits [len(batch), 2 slots, 2 words] of p2's texts `batch` (one forward pass), slot j's word's neurons
    ablated at slot j of the text where it is masked (text 1 + j)."""
    with ExitStack() as stack:
        for j, w in enumerate(p2.slot_words):
            if 1 + j not in batch:
                continue
            rows = [[p2.positions[j]] if i == 1 + j else [] for i in batch]   # one entry per text of the batch
            stack.enter_context(ablate_neurons(model, p1.layer, p1.neurons(w), positions=rows, mode=mode,
                                               values=values, site=p1.site, verbose=False))
        return logits_at(model, tokenizer, [p2.texts[i] for i in batch], [p2.read_at[i] for i in batch],
                         words=list(p2.words))
