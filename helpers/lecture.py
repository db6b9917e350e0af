"""The lecture's three parts as functions (the notebooks call these), plus a summary CLI.

    part1(model, tok, contrast, layer, q, method, site) -> Part1   capture + paired t-test + FDR
    part2(model, tok, contrast, item)                  -> Part2   logits at the demo [MASK]s
    part3(model, tok, part1, part2, mode)              -> Part3   ablate a/b neurons at their slots
    default_layer(model)                               -> the layer the notebooks use

`python -m helpers` runs all three on the default model and prints a summary.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from .hooks import mlp_activations
from .lesion import ablate_neurons, logits_at
from .models import check_layer, load_mlm, model_label, n_layers
from .stats import PairedResult, paired_ttest_fdr
from .stimuli import MASK, Contrast, load_contrast, mask_positions

STANDIN_LAYER = 5


def default_layer(model) -> int:
    """bert-base-uncased: 9, as in the lecture. The 6-layer stand-in: 5, its last layer, the one where its
    "her"/"him" neurons, zeroed at a [MASK], beat random neuron sets (data/models/stand-in/MODEL_CARD.md)."""
    n = n_layers(model)
    return 9 if n == 12 else min(n - 1, STANDIN_LAYER if n == 6 else round(0.75 * n))


def _contrast(c) -> Contrast:
    return c if isinstance(c, Contrast) else load_contrast(c)


@dataclass
class Part1:
    model_label: str
    contrast: Contrast
    layer: int
    site: str
    acts_a: np.ndarray          # [n_pairs, n_neurons] at the target word, condition a
    acts_b: np.ndarray          # same, condition b
    test: PairedResult

    @property
    def a_neurons(self) -> np.ndarray:
        """Boolean mask: significantly more active for word a (e.g. "him" neurons)."""
        return self.test.positive

    @property
    def b_neurons(self) -> np.ndarray:
        return self.test.negative

    def neurons_for(self, word: str) -> np.ndarray:
        if word == self.contrast.a:
            return self.a_neurons
        if word == self.contrast.b:
            return self.b_neurons
        raise ValueError(f"{word!r} is neither {self.contrast.a!r} nor {self.contrast.b!r}")

    def summary(self) -> str:
        return (f"Part 1 | {self.model_label}, layer {self.layer}, {self.site}-GELU, "
                + self.test.summary(self.contrast.a, self.contrast.b))


def part1(model, tokenizer, contrast="him_her", layer: int | None = None, q: float = 0.05,
          method: str = "bh", site: str = "pre", wordpiece: str = "last") -> Part1:
    """Activations at the target word of every pair, then a paired t-test per neuron with FDR."""
    c = _contrast(contrast)
    layer = default_layer(model) if layer is None else check_layer(model, layer)
    sents = c.sentences_a + c.sentences_b
    words = [c.a] * len(c.pairs) + [c.b] * len(c.pairs)
    acts = mlp_activations(model, tokenizer, sents, words, [layer], site=site, wordpiece=wordpiece)[layer]
    n = len(c.pairs)
    return Part1(model_label(model), c, layer, site, acts[:n], acts[n:],
                 paired_ttest_fdr(acts[:n], acts[n:], q=q, method=method))


@dataclass
class Part2:
    model_label: str
    contrast: Contrast
    texts: list[str]            # [clean, slot 0 masked, slot 1 masked]
    slot_words: list[str]       # the word that belongs in each slot, e.g. ["her", "him"]
    positions: list[int]        # token index of each slot (same in all three texts)
    words: list[str]            # the words whose logits are read (= slot_words)
    logits: np.ndarray          # [3 texts, 2 slots, 2 words]

    @property
    def correct(self) -> list[bool]:
        """At each masked slot, does the word that belongs there beat the other word?"""
        return [bool(self.logits[1 + j, j, j] > self.logits[1 + j, j, 1 - j]) for j in range(2)]

    def summary(self) -> str:
        parts = [f"[MASK]={w}: {w} {self.logits[1 + j, j, j]:.2f} vs {self.words[1 - j]} "
                 f"{self.logits[1 + j, j, 1 - j]:.2f} ({'right' if ok else 'WRONG'})"
                 for j, (w, ok) in enumerate(zip(self.slot_words, self.correct))]
        return f"Part 2 | {self.model_label}: " + "; ".join(parts)


def demo_items(contrast) -> list[tuple[str, list[tuple[str, str]]]]:
    """The contrast's test lines grouped by the sentence they fill in to: [(clean, [(masked, word)])]."""
    c = _contrast(contrast)
    groups: dict[str, list[tuple[str, str]]] = {}
    for text, word in c.tests:
        groups.setdefault(text.replace(MASK, word), []).append((text, word))
    return list(groups.items())


def part2(model, tokenizer, contrast="him_her", item: int = 0) -> Part2:
    """Logits of both words at both slots of demo sentence `item` (clean and each slot masked)."""
    c = _contrast(contrast)
    items = _two_slot_items(c)
    if not items:
        raise ValueError(f"{c.name}: no demo sentence with one {c.a!r} slot and one {c.b!r} slot among its test lines")
    if not 0 <= item < len(items):
        raise ValueError(f"item must be 0..{len(items) - 1} ({len(items)} demo sentences in {c.name})")
    clean, masked = items[item]
    texts = [clean] + [t for t, _ in masked]
    slot_words = [w for _, w in masked]
    positions = [p[0] for p in mask_positions(tokenizer, texts[1:])]
    logits = logits_at(model, tokenizer, texts, positions, slot_words)
    return Part2(model_label(model), c, texts, slot_words, positions, slot_words, logits)


@dataclass
class Part3:
    model_label: str
    layer: int
    mode: str
    part2: Part2
    n_ablated: list[int]        # neurons ablated at each slot
    logits: np.ndarray          # [3, 2, 2] with the ablation
    delta: np.ndarray           # clean - ablated (positive: the ablation lowered the logit)

    def logit_diffs(self) -> list[tuple[str, str, float, float]]:
        """Per masked slot: (word, other word, word - other before, after the ablation), at that slot."""
        p2, out = self.part2, []
        for j, w in enumerate(p2.slot_words):
            o = 1 - j
            out.append((w, p2.words[o], float(p2.logits[1 + j, j, j] - p2.logits[1 + j, j, o]),
                        float(self.logits[1 + j, j, j] - self.logits[1 + j, j, o])))
        return out

    def summary(self) -> str:
        p2 = self.part2
        parts = []
        for j, (w, other, before, after) in enumerate(self.logit_diffs()):
            parts.append(f"{w} slot ({self.n_ablated[j]} '{w}' neurons {self.mode}ed): logit({w}) "
                         f"{p2.logits[1 + j, j, j]:.2f} -> {self.logits[1 + j, j, j]:.2f}, "
                         f"{w}-{other} {before:+.2f} -> {after:+.2f}")
        return f"Part 3 | {self.model_label}, layer {self.layer}: " + "; ".join(parts)


def part3(model, tokenizer, p1: Part1, p2: Part2, mode: str = "zero") -> Part3:
    """Ablate each slot's neurons (e.g. "her" neurons) at that slot of the text where it is masked."""
    if p1.contrast.name != p2.contrast.name:
        raise ValueError(f"part1 used {p1.contrast.name!r} but part2 used {p2.contrast.name!r}")
    values = None
    if mode == "mean":  # mean post-GELU value of each neuron over all stimulus sentences at their targets
        c = p1.contrast
        post = mlp_activations(model, tokenizer, c.sentences_a + c.sentences_b,
                               [c.a] * len(c.pairs) + [c.b] * len(c.pairs), [p1.layer], site="post")[p1.layer]
        values = post.mean(0)
    from contextlib import ExitStack
    with ExitStack() as stack:
        for j, w in enumerate(p2.slot_words):
            rows = [None, None, None]
            rows[1 + j] = p2.positions[j]
            stack.enter_context(ablate_neurons(model, p1.layer, p1.neurons_for(w), positions=rows, mode=mode,
                                               values=values))
        ablated = logits_at(model, tokenizer, p2.texts, p2.positions, p2.words)
    return Part3(p1.model_label, p1.layer, mode, p2, [int(p1.neurons_for(w).sum()) for w in p2.slot_words],
                 ablated, p2.logits - ablated)


# --- command line (python -m helpers; python -m helpers.report shares these arguments) -------------

def _fraction(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < q < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return q


def _natural(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def positive_int(text: str) -> int:
    n = _natural(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def add_lecture_args(ap: argparse.ArgumentParser) -> None:
    """--model, --contrast, --layer, --q, --method: the arguments of both command lines."""
    ap.add_argument("--model", default=None, help="hub name, folder or 'stand-in' (default: $KIT_MODEL or auto)")
    ap.add_argument("--contrast", default="him_her",
                    help="a shipped contrast or a .tsv path; Parts 2-3 need a demo sentence with one slot per "
                         "word among its test lines (of the shipped sets: him_her)")
    ap.add_argument("--layer", type=_natural, default=None, help="MLP layer (default: the lecture's, 9 of 12)")
    ap.add_argument("--q", type=_fraction, default=0.05, help="FDR level, 0 < q < 1 (default 0.05)")
    ap.add_argument("--method", default="bh", choices=["bh", "by"])


def checked_setup(ap: argparse.ArgumentParser, a):
    """(model, tokenizer, contrast) for parsed arguments `a`, or ap.error (exit 2, no traceback) naming the
    bad argument: the contrast is checked before the model is loaded, the layer right after."""
    from .models import ModelUnavailable
    from .stimuli import StimulusError
    try:
        c = load_contrast(a.contrast)
    except StimulusError as e:
        ap.error(f"--contrast: {e}")
    if not _two_slot_items(c):
        from .stimuli import list_contrasts
        ok = [n for n in list_contrasts() if _two_slot_items(load_contrast(n))]
        ap.error(f"--contrast {a.contrast}: Parts 2 and 3 need a demo sentence among its test lines with one "
                 f"{c.a!r} [MASK] and one {c.b!r} [MASK]; it has none. Shipped sets that have one: {', '.join(ok)}")
    try:
        model, tok = load_mlm(a.model)
    except ModelUnavailable as e:
        ap.error(f"--model: {e}")
    if a.layer is not None:
        try:
            check_layer(model, a.layer)
        except ValueError as e:
            ap.error(f"--layer: {e}")
    return model, tok, c


def _two_slot_items(c: Contrast) -> list:
    """demo_items with one `a` slot and one `b` slot: what Parts 2 and 3 show."""
    return [g for g in demo_items(c) if len(g[1]) == 2 and {w for _, w in g[1]} == {c.a, c.b}]


def writable_folder(ap: argparse.ArgumentParser, flag: str, folder) -> None:
    """Create `folder` now (ap.error if it cannot be), so a bad path fails before the slow part."""
    from pathlib import Path
    p = Path(folder)
    if p.exists() and not p.is_dir():
        ap.error(f"{flag} {folder}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        ap.error(f"{flag} {folder}: cannot create it ({e.strerror or e})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m helpers", description="Run the lecture's three parts and print "
                                                                          "a summary.")
    add_lecture_args(ap)
    ap.add_argument("--figures", default=None, help="folder to save the lecture's figures (PNG) in")
    a = ap.parse_args(argv)
    if a.figures:
        writable_folder(ap, "--figures", a.figures)
    model, tok, _ = checked_setup(ap, a)
    p1 = part1(model, tok, a.contrast, a.layer, a.q, a.method)
    p2 = part2(model, tok, a.contrast)
    p3 = part3(model, tok, p1, p2)
    print(p1.summary())
    print(p2.summary())
    print(p3.summary())
    if a.figures:
        save_figures(p1, p2, p3, a.figures)


def figures(p1: Part1, p2: Part2, p3: Part3) -> dict:
    """The lecture's four figures, {file stem: matplotlib Figure}."""
    from . import plots

    return {"1_activation_histograms": plots.activation_histograms(np.concatenate([p1.acts_a, p1.acts_b]),
                                                                   p1.model_label, p1.layer),
            "1_tvalues": plots.tvalues(p1), "2_clean_logits": plots.clean_logits(p2),
            "3_ablation_effect": plots.ablation_effect(p3)}


def save_figures(p1: Part1, p2: Part2, p3: Part3, folder) -> list:
    """Write the lecture's four figures as PNG files into `folder`; returns their paths."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(p1, p2, p3).items():
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    print(f"figures: {', '.join(str(p) for p in paths)}")
    return paths


if __name__ == "__main__":
    main()
