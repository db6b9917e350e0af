"""The explorer's computation, without widgets: settings in, a result out (tests drive it directly).

    Settings                the panel's controls as one value (contrast, layer, q, method, word, neurons, k, mode,
                            sentence, seed)
    Session(model, tok)     compute(settings) -> ExplorerResult; caches by content: a contrast by its file's
                            bytes, activations by (words, pairs, layer, site), so an edited file is read again
    ExplorerResult          what the panel shows: the t-test, the ablated neurons, logits before and after
    default_sentence(c)     a contrast's first test line, or its first b sentence with the target masked

Sign and order, as everywhere in the kit: logits are listed in contrast.words order (a, b); the lesion is
reported as logit(expected) - logit(other) at each [MASK], where `expected` is the test line's word when
the sentence is one of the contrast's test lines, else the word whose neurons are ablated. A lesion that
works is a drop.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..arch import DEFAULT_SITE, check_layer, default_layer, max_tokens, model_label, n_layers
from ..capture import contrast_activations
from ..lecture import Part1, train_mode_note
from ..lesion import ablate_neurons
from ..readout import diff_text, masked_logits
from ..selection import word_neurons, word_scores
from ..stats import paired_ttest_fdr
from ..stimuli import MASK, Contrast, StimulusError, contrast_file, load_contrast, mask_positions, mask_word

NEURON_KINDS = ("selected", "topk", "random")
MODES = ("zero", "mean")


@dataclass(frozen=True)
class Settings:
    """One state of the panel's controls."""

    contrast: str = "him_her"       # a shipped name or a path
    layer: int | None = None        # None: the model's default layer
    q: float = 0.05
    method: str = "bh"
    word: str | None = None         # whose neurons to ablate; None: the contrast's b word ("her")
    neurons: str = "selected"       # "selected" (pass FDR), "topk" (k most word-like by t), "random" (as many
                                    # as "selected", drawn from the whole layer)
    k: int = 20
    mode: str = "zero"              # "zero" or "mean"
    sentence: str | None = None     # a text with [MASK]; None: default_sentence(contrast)
    seed: int = 0                   # of the random draw

    def __post_init__(self):
        """Refuse what would be computed silently wrong (k=-3 would ablate all but 3 neurons)."""
        if self.neurons not in NEURON_KINDS:
            raise ValueError(f"Settings: neurons must be one of {NEURON_KINDS}, got {self.neurons!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"Settings: k (how many top neurons) must be a whole number 1 or more, got {self.k!r}")
        if self.mode not in MODES:
            raise ValueError(f"Settings: mode must be one of {MODES}, got {self.mode!r}")


def default_sentence(c: Contrast) -> str:
    """The contrast's first test line, or its first b sentence with the target word masked (as a word:
    "The mother saw her." masks "her", and a capitalised "Her" is found too)."""
    return c.tests[0][0] if c.tests else mask_word(c.sentences_b[0], c.b)


@dataclass
class ExplorerResult:
    """What the panel shows after one refresh."""

    model: str
    contrast: Contrast
    layer: int
    q: float
    method: str
    word: str                       # whose neurons are ablated
    neuron_kind: str                # "selected", "topk", "random"
    neurons: np.ndarray             # indices of the ablated neurons
    mode: str
    sentence: str
    part1: Part1
    expected: list[str] = field(default_factory=list)   # the expected word at each [MASK]
    before: np.ndarray | None = None    # [n_masks, 2] logits of contrast.words at each [MASK], nothing ablated
    after: np.ndarray | None = None     # the same with the neurons ablated at the [MASK]s
    error: str | None = None            # a readable problem with the sentence (no [MASK], ...)
    note: str = ""                      # about the model, e.g. left in train mode (lecture.train_mode_note)

    @property
    def words(self) -> tuple[str, str]:
        return self.contrast.words

    @property
    def set_label(self) -> str:
        """The ablated set in words: "'her' neurons", "top 20 'her' neurons by t", "random, as many as 'her'"."""
        return {"selected": f"'{self.word}' neurons", "topk": f"top {len(self.neurons)} '{self.word}' neurons by t",
                "random": f"random, as many as the '{self.word}' neurons"}[self.neuron_kind]

    def diffs(self) -> list[tuple[str, str, float, float]]:
        """Per [MASK]: (expected, other, logit(expected) - logit(other) before, after the ablation)."""
        if self.before is None:
            return []
        out = []
        for m, e in enumerate(self.expected):
            i, j = self.words.index(e), self.words.index(self.contrast.foil(e))
            out.append((e, self.contrast.foil(e), float(self.before[m, i] - self.before[m, j]),
                        float(self.after[m, i] - self.after[m, j])))
        return out

    def predictions(self, which: str = "before") -> list[str]:
        """The word that wins at each [MASK] ("before" or "after" the ablation)."""
        x = self.before if which == "before" else self.after
        return [] if x is None else [self.words[int(np.argmax(r))] for r in x]

    def summary(self) -> str:
        s = [self.note] if self.note else []
        s += [self.part1.summary(),
              f"ablated: {len(self.neurons)} neurons ({self.set_label}), {self.mode}-ablation at the {MASK}, "
              f"layer {self.layer}"]
        if self.error:
            s.append(f"sentence: {self.error}")
        for m, (e, o, b, a) in enumerate(self.diffs()):
            shown = ", ".join(f"{w} {self.before[m, k]:.2f} -> {self.after[m, k]:.2f}" for k, w in enumerate(self.words))
            s.append(f"{MASK} {m + 1}: {shown}, {diff_text(e, o, b, a)}")
        return "\n".join(s)


class Session:
    """The explorer's model and caches. compute(settings) is a function of the settings alone (the caches
    only save time): activations per (contrast, layer, site), clean logits per (sentence, words)."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.label = model_label(model)
        self._acts: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._logits: dict[tuple, np.ndarray] = {}
        self._contrasts: dict[tuple[str, str], Contrast] = {}
        self.n_captures = 0          # passes over a whole contrast set (the expensive part)

    def contrast(self, name: str) -> Contrast:
        """The contrast as its file reads now: cached by the file's bytes, so an edited file is read again."""
        path = contrast_file(name)
        key = (str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest())
        if key not in self._contrasts:
            self._contrasts[key] = load_contrast(path)
        return self._contrasts[key]

    def activations(self, c: Contrast, layer: int, site: str = DEFAULT_SITE,
                    progress: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) values [n_pairs, n_neurons] at `layer`; a miss captures every layer in one pass."""
        content = (c.words, tuple(c.pairs))        # the sentences themselves, not the file's name
        key = (content, layer, site)
        if key not in self._acts:
            a, b = contrast_activations(self.model, self.tokenizer, c, range(n_layers(self.model)), site=site,
                                        progress=progress or False, verbose=False)
            for L in a:
                self._acts[(content, L, site)] = (a[L], b[L])
            self.n_captures += 1
        return self._acts[key]

    def compute(self, s: Settings, progress: Callable | None = None) -> ExplorerResult:
        """The result for settings `s` (errors in the sentence are in result.error; bad settings raise)."""
        c = self.contrast(s.contrast)
        layer = default_layer(self.model) if s.layer is None else check_layer(self.model, s.layer)
        word = c.b if s.word is None else s.word
        c.sign(word)                                  # an error naming the contrast's words
        a, b = self.activations(c, layer, progress=progress)
        p1 = Part1(self.label, c, layer, DEFAULT_SITE, a, b, paired_ttest_fdr(a, b, q=s.q, method=s.method))
        res = ExplorerResult(self.label, c, layer, float(s.q), s.method, word, s.neurons,
                             self.neurons(p1, word, s), s.mode,
                             default_sentence(c) if s.sentence is None else s.sentence, p1,
                             note=train_mode_note(self.model))
        text, res.error = self.check_sentence(res.sentence, c)
        if res.error:
            return res
        try:
            before = self.clean_logits(text, c)
        except StimulusError as e:            # a word of the contrast this tokenizer splits, ...
            res.error = str(e)
            return res
        res.expected = [c.expected(res.sentence) or word] * len(before)
        res.before = before
        values = np.concatenate(self.activations(c, layer)).mean(0) if s.mode == "mean" else None
        with ablate_neurons(self.model, layer, res.neurons, positions=mask_positions(self.tokenizer, [text]),
                            mode=s.mode, values=values, verbose=False):
            res.after = masked_logits(self.model, self.tokenizer, [text], list(c.words))[0]
        return res

    @staticmethod
    def neurons(p1: Part1, word: str, s: Settings) -> np.ndarray:
        """Indices of the neurons to ablate for settings `s`."""
        chosen = word_neurons(p1.test, p1.contrast, word)
        if s.neurons == "selected":
            return np.flatnonzero(chosen)
        if s.neurons == "topk":
            if s.k > chosen.size:
                raise ValueError(f"k={s.k}, but layer {p1.layer} has {chosen.size} neurons: give k from 1 to "
                                 f"{chosen.size}")
            score = np.nan_to_num(word_scores(p1.test, p1.contrast, word), nan=-np.inf)
            return np.sort(np.argsort(-score, kind="stable")[: int(s.k)])
        if s.neurons == "random":
            # as many neurons, drawn from the whole layer (as controls.lesion_test's default pool="all"):
            # drawing only outside the set would, for a set of half the layer, pick the other set
            rng = np.random.default_rng([s.seed, p1.layer])
            return np.sort(rng.choice(chosen.size, size=int(chosen.sum()), replace=False))
        raise ValueError(f"neurons must be one of {NEURON_KINDS}, got {s.neurons!r}")

    def clean_logits(self, text: str, c: Contrast) -> np.ndarray:
        key = (text, c.words)
        if key not in self._logits:
            self._logits[key] = masked_logits(self.model, self.tokenizer, [text], list(c.words))[0]
        return self._logits[key]

    def check_sentence(self, text: str, c: Contrast) -> tuple[str, str | None]:
        """The sentence with [mask] spelled as the tokenizer's mask token, or a readable problem."""
        mask = self.tokenizer.mask_token
        text = re.sub(r"\[mask\]", mask, (text or "").strip(), flags=re.I)
        if not text:
            return text, f"Type a sentence with {MASK} where the word to predict goes."
        if mask not in text:
            return text, (f"Your sentence has no {MASK}: \u201c{text}\u201d. Put {MASK} where the word to predict "
                          f"goes, e.g. \u201c{default_sentence(c)}\u201d")
        n, most = len(self.tokenizer(text, verbose=False)["input_ids"]), max_tokens(self.model)
        if most is not None and n > most:
            return text, f"Your sentence is {n} tokens long; {self.label} reads at most {most}. Shorten it."
        return text, None
