"""Controls that make a lesion result believable (notebook 04).

    pronoun_selection / mask_selection(model, tok, contrast)  -> Selection: t-test + FDR per neuron, all layers
    cloze_set(tok, answer) / masked_set(tok, contrast, word)  -> EvalSet: [MASK] texts, target, foil
    lesion_test(model, tok, layer, neurons, texts, positions, target, foil, n_draws, seed, mode, values)
                                                -> LesionResult: chosen set vs random sets of its size
    compare_modes(...)   -> {mode: LesionResult}  zero / mean / resample ablation of one set
    dose_response(...)   -> DoseResponse          top-k neurons by t, k on a log grid, vs random sets of k
    layer_sweep(...)     -> LayerSweep            FDR counts and lesion effect for every layer
    heldout_selection(a, b, k) -> HeldOut         select on k-1 folds of pairs, replicate on the last
    heldout_lesion(...)  -> HeldOutLesion         lesion on training-pair vs held-out-pair [MASK] texts
    compare_criteria(a, b, q) -> Criteria         t-test vs Wilcoxon, BH vs BY, Cohen's d_z
    pieces: permutation_p, random_neuron_sets, kfold_pairs, jaccard, set_overlap, ablation_values,
            context_pairs / write_context_contrast (data/contrasts/him_her_context.tsv),
            Ablator (model-backed, via helpers.fast), AdditiveAblator (a synthetic ground truth)

Definitions used throughout:
- logit difference = logit(target) - logit(foil) at the [MASK]. A raw logit moves with all the
  others (the softmax ignores a shared shift); the difference cancels that shift and is what the
  model's choice between the two words depends on. "drop" = clean - lesioned difference,
  averaged over the texts: positive = the lesion hurt the target word.
- null: the same drop for random sets of the same size from the same layer, drawn without
  replacement from all its neurons (pool="others": only from neurons outside the chosen set), seeded.
- permutation p = (1 + #{null drops >= observed}) / (1 + n_draws): one-sided, never 0.
- z = (observed - mean(null)) / sd(null): the effect in units of the random sets' spread.
- flip rate: of the texts where the clean model prefers target over foil (difference > 0), the
  fraction where the lesioned model does not (difference <= 0). top-1 change: the fraction of all
  texts whose arg-max word over the whole vocabulary changes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from .hooks import eval_mode, mlp_activations, right_padding
from .lesion import MODES, ablate_neurons, neuron_index
from .models import check_layer, model_label, n_layers, n_neurons
from .stats import PairedResult, cohens_dz, fdr, holm, paired_ttest_fdr, paired_wilcoxon
from .stimuli import DATA, MASK, Contrast, StimulusError, find_word, load_contrast, mask_positions, model_text

CLOZE = DATA / "eval" / "pronoun_cloze.tsv"
POOL_WARN = 0.2   # pool="others" gets a caveat in summaries when the chosen set is more than this share of its layer


# --- small pieces -----------------------------------------------------------------------------
def permutation_p(observed: float, null) -> float:
    """One-sided permutation p-value (1 + #{null >= observed}) / (1 + N); NaN null draws are ignored."""
    null = np.asarray(null, dtype=np.float64).ravel()
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def as_mask(neurons, width: int) -> np.ndarray:
    """Boolean mask [width] from a mask or an index list (errors name the bad index)."""
    m = np.zeros(width, dtype=bool)
    m[neuron_index(neurons, width).numpy()] = True
    return m


def random_neuron_sets(width: int, size: int, n: int, seed: int = 0, exclude=None) -> np.ndarray:
    """n random sets of `size` distinct neurons out of `width`: bool array [n, width].

    exclude: neurons (mask or indices) never drawn; used for pool="others". Seeded, so the
    same call gives the same sets.
    """
    pool = np.arange(width) if exclude is None else np.flatnonzero(~as_mask(exclude, width))
    if not 0 <= size <= pool.size:
        raise ValueError(f"cannot draw {size} neurons from a pool of {pool.size} (width {width})")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, width), dtype=bool)
    if size and n:
        pick = np.argsort(rng.random((n, pool.size)), axis=1)[:, :size]
        out[np.arange(n)[:, None], pool[pick]] = True
    return out


MIN_HELDOUT = 3   # pairs in a held-out fold, at least: a d_z on fewer is noise (and Hedges' J = 0 at 2)


def kfold_pairs(n_pairs: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds over pair indices: [(train, test)], test folds disjoint, together covering every pair."""
    if not 2 <= k <= n_pairs:
        raise ValueError(f"k must be between 2 and the number of pairs ({n_pairs}), got {k}")
    perm = np.random.default_rng(seed).permutation(n_pairs)
    out = []
    for test in np.array_split(perm, k):
        test = np.sort(test)
        out.append((np.setdiff1d(np.arange(n_pairs), test), test))
    return out


def jaccard(x, y) -> float:
    """|x & y| / |x | y| of two boolean masks (1.0 when both are empty)."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    union = np.sum(x | y)
    return float(np.sum(x & y) / union) if union else 1.0


def mean_pairwise_jaccard(masks) -> float:
    """Mean Jaccard index over all pairs of rows of a boolean [n_sets, width] array."""
    masks = np.asarray(masks, bool)
    vals = [jaccard(masks[i], masks[j]) for i, j in combinations(range(len(masks)), 2)]
    return float(np.mean(vals)) if vals else float("nan")


@dataclass
class Overlap:
    """Overlap of two neuron sets from one layer, against what random sets of those sizes would share."""

    n_x: int
    n_y: int
    n_both: int
    expected: float             # mean overlap of two random sets of sizes n_x, n_y (hypergeometric)
    jaccard: float
    p: float                    # P(overlap >= n_both) for random sets (hypergeometric upper tail)
    labels: tuple[str, str] = ("x", "y")

    def summary(self) -> str:
        a, b = self.labels
        return (f"{a}: {self.n_x}, {b}: {self.n_y}, both: {self.n_both} (random sets of these sizes share "
                f"{self.expected:.1f}; Jaccard {self.jaccard:.2f}, hypergeometric p = {_fmt_p(self.p)})")


def set_overlap(x, y, labels=("x", "y")) -> Overlap:
    """How many neurons two boolean masks of one layer share, and how surprising that is."""
    from scipy.stats import hypergeom

    x, y = np.asarray(x, bool), np.asarray(y, bool)
    w, nx, ny, both = x.size, int(x.sum()), int(y.sum()), int((x & y).sum())
    return Overlap(nx, ny, both, nx * ny / w, jaccard(x, y), float(hypergeom.sf(both - 1, w, nx, ny)), tuple(labels))


def _fmt_p(p: float) -> str:
    return "nan" if not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.0e}")


def word_sign(contrast: Contrast, word: str) -> int:
    """+1 when `word` is the contrast's a (t = a - b > 0 marks its neurons), -1 when it is b."""
    if word == contrast.a:
        return 1
    if word == contrast.b:
        return -1
    raise ValueError(f"{word!r} is neither {contrast.a!r} nor {contrast.b!r} of contrast {contrast.name!r}")


def _contrast(c) -> Contrast:
    return c if isinstance(c, Contrast) else load_contrast(c)


# --- evaluation texts ------------------------------------------------------------------------
@dataclass
class EvalSet:
    """[MASK] texts to lesion at: the first [MASK] of each text, with the word that belongs there."""

    name: str
    texts: list[str]
    positions: list[int]        # token index of the [MASK] in each text
    target: str                 # the right word at the [MASK]
    foil: str                   # the wrong word it is compared with

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "EvalSet":
        idx = np.asarray(idx, dtype=int)
        return EvalSet(self.name, [self.texts[i] for i in idx], [self.positions[i] for i in idx], self.target,
                       self.foil)


def cloze_set(tokenizer, answer: str = "her", role: str = "object", path: Path = CLOZE) -> EvalSet:
    """The held-out cloze items (data/eval/pronoun_cloze.tsv) whose answer is `answer` in `role`."""
    texts, foils = [], set()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        text, ans, foil, r = line.split("\t")
        if ans == answer and r == role:
            texts.append(text)
            foils.add(foil)
    if not texts:
        raise StimulusError(f"{path.name} has no {role!r} items with answer {answer!r}")
    if len(foils) != 1:
        raise StimulusError(f"{path.name}: {role!r} items with answer {answer!r} have several foils {sorted(foils)}")
    pos = [p[0] for p in mask_positions(tokenizer, texts)]
    return EvalSet(f"cloze {role} '{answer}'", texts, pos, answer, foils.pop())


def mask_word(sentence: str, word: str) -> str:
    """`sentence` with its one whole-word `word` replaced by [MASK] (an error if not exactly once)."""
    spans = find_word(sentence, word)
    if len(spans) != 1:
        raise StimulusError(f"{sentence!r} must contain {word!r} exactly once as a word to mask it, found {len(spans)}")
    (s, e), = spans
    return sentence[:s] + MASK + sentence[e:]


def masked_set(tokenizer, contrast="him_her_context", word: str | None = None) -> EvalSet:
    """The contrast's `word` sentences (default: condition b) with the target word replaced by [MASK]."""
    c = _contrast(contrast)
    word = c.b if word is None else word
    sents = c.sentences_a if word_sign(c, word) > 0 else c.sentences_b
    texts = [mask_word(s, word) for s in sents]
    return EvalSet(f"{c.name} masked '{word}'", texts, [p[0] for p in mask_positions(tokenizer, texts)], word,
                   c.foil(word))


# --- context pairs (data/contrasts/him_her_context.tsv) ------------------------------------------
CONTEXT_MALE = """Robert William Richard Charles Anthony Donald Steven Andrew Joshua Kenneth Brian Edward Ronald
Timothy Jason Jeffrey Gary Nicholas Eric Jonathan Stephen Larry Justin Brandon Benjamin Gregory Raymond
Alexander Patrick Dennis Jerry Aaron Walter Harold Jeremy Carl Keith Roger Gerald Arthur Lawrence Albert
Bruce Alan Ralph Roy Eugene Vincent Russell Louis Philip Harry Oscar Hugo Felix Simon Martin Colin Neil Ian
Victor Luke Liam Ivan""".split()
CONTEXT_FEMALE = """Mary Patricia Linda Elizabeth Barbara Susan Karen Nancy Betty Margaret Sandra Kimberly Donna
Michelle Dorothy Carol Amanda Melissa Deborah Stephanie Sharon Cynthia Kathleen Amy Shirley Angela Helen
Anna Brenda Pamela Nicole Samantha Katherine Christine Catherine Carolyn Janet Ruth Heather Diane Virginia
Julie Christina Lauren Joan Evelyn Judith Cheryl Andrea Martha Jacqueline Gloria Ann Teresa Alice Judy
Lucy Zoe Mia Eva Nina Vera Carmen Rosa""".split()
CONTEXT_CLAUSES = ["{} is my neighbor.", "{} is an old friend of ours.", "{} moved here last spring.",
                   "{} works at the library.", "{} is new in town.", "{} lives across the street.",
                   "{} is my cousin.", "{} joined our team in May."]


def context_pairs(source="him_her") -> list[tuple[str, str]]:
    """The pairs of `source` with a context clause naming a man (a) or a woman (b) put in front.

    Pair i gets male name i, female name i and clause i mod 8; the names are single
    WordPiece tokens and unambiguous; none is in a him/her test line or the cloze set (Robert is
    in one he/she test line). Deterministic:
    this is how data/contrasts/him_her_context.tsv was written.
    """
    c = _contrast(source)
    if len(c.pairs) > min(len(CONTEXT_MALE), len(CONTEXT_FEMALE)):
        raise ValueError(f"{c.name} has {len(c.pairs)} pairs but only {len(CONTEXT_MALE)} names per gender")
    out = []
    for i, (sa, sb) in enumerate(c.pairs):
        clause = CONTEXT_CLAUSES[i % len(CONTEXT_CLAUSES)]
        out.append((f"{clause.format(CONTEXT_MALE[i])} {sa}", f"{clause.format(CONTEXT_FEMALE[i])} {sb}"))
    return out


def write_context_contrast(path: Path | None = None, source="him_her") -> Path:
    """Write the context contrast file from `source` (see context_pairs)."""
    c = _contrast(source)
    path = Path(path) if path else DATA / "contrasts" / "him_her_context.tsv"
    head = [
        "# Object-pronoun contrast with a gendered context: each pair is a pair of him_her.tsv with a",
        "# short clause in front that names a man (him sentence) or a woman (her sentence).",
        "# Written by helpers.controls.write_context_contrast() (deterministic: pair i gets male name i,",
        "# female name i and clause i mod 8); regenerate rather than edit by hand.",
        "# Unlike him_her.tsv, the name is a second gendered word on purpose (rule 4 does not apply):",
        "# with the pronoun replaced by [MASK] (helpers.controls.mask_selection / masked_set), the name",
        "# is the ONLY difference, so neurons selected at the [MASK] see gender from context,",
        "# not the identity of the token under them.",
        f"#: name = {c.name} with context",
        f"#: a = {c.a}",
        f"#: b = {c.b}",
        "#: also_differ = 1",
        "#: description = him/her pair sentences after a clause naming a man (him) or a woman (her); "
        "the name and the pronoun differ",
    ]
    lines = head + [f"pair\t{a}\t{b}" for a, b in context_pairs(c)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- selection -------------------------------------------------------------------------------
@dataclass
class Selection:
    """Per-neuron paired tests at every captured layer, for one contrast at one position."""

    model_label: str
    contrast: Contrast
    where: str                  # "pronoun" or "[MASK]"
    site: str
    acts_a: dict[int, np.ndarray]   # layer -> [n_pairs, n_neurons]
    acts_b: dict[int, np.ndarray]
    tests: dict[int, PairedResult]

    @property
    def layers(self) -> list[int]:
        return sorted(self.tests)

    def neurons(self, layer: int, word: str) -> np.ndarray:
        """Boolean mask of the neurons significantly more active for `word` at `layer`."""
        t = self.tests[layer]
        return t.positive if word_sign(self.contrast, word) > 0 else t.negative

    def summary(self, layer: int) -> str:
        c = self.contrast
        return (f"{self.model_label}, layer {layer}, at the {self.where}: "
                + self.tests[layer].summary(c.a, c.b))


def select_neurons(model, tokenizer, sentences_a, sentences_b, words_a, words_b, layers=None, q: float = 0.05,
                   method: str = "bh", site: str = "pre") -> tuple[dict, dict, dict]:
    """Activations at the target words of paired sentences (all layers in one pass) + t-test/FDR per layer.

    Returns (acts_a, acts_b, tests), each {layer: ...}.
    """
    layers = list(range(n_layers(model))) if layers is None else [check_layer(model, x) for x in layers]
    n = len(sentences_a)
    if len(sentences_b) != n:
        raise ValueError(f"{n} a-sentences but {len(sentences_b)} b-sentences; pairs must be matched")
    words = ([words_a] * n if isinstance(words_a, str) else list(words_a)) + \
            ([words_b] * n if isinstance(words_b, str) else list(words_b))
    acts = mlp_activations(model, tokenizer, list(sentences_a) + list(sentences_b), words, layers, site=site)
    a = {L: acts[L][:n] for L in layers}
    b = {L: acts[L][n:] for L in layers}
    return a, b, {L: paired_ttest_fdr(a[L], b[L], q=q, method=method) for L in layers}


def pronoun_selection(model, tokenizer, contrast="him_her", layers=None, q: float = 0.05, method: str = "bh",
                      site: str = "pre") -> Selection:
    """Select at the pronoun itself, as in the lecture: the token differs between conditions."""
    c = _contrast(contrast)
    a, b, tests = select_neurons(model, tokenizer, c.sentences_a, c.sentences_b, c.a, c.b, layers, q, method, site)
    return Selection(model_label(model), c, "pronoun", site, a, b, tests)


def mask_selection(model, tokenizer, contrast="him_her_context", layers=None, q: float = 0.05, method: str = "bh",
                   site: str = "pre") -> Selection:
    """Select at a [MASK] put where the pronoun was: the token is the same, only the context's gender differs."""
    c = _contrast(contrast)
    sa = [mask_word(s, c.a) for s in c.sentences_a]
    sb = [mask_word(s, c.b) for s in c.sentences_b]
    a, b, tests = select_neurons(model, tokenizer, sa, sb, MASK, MASK, layers, q, method, site)
    return Selection(model_label(model), c, "[MASK]", site, a, b, tests)


def ablation_values(model, tokenizer, contrast="him_her", layer: int = 0, mode: str = "mean") -> np.ndarray | None:
    """Replacement values for mean/resample ablation: post-GELU values at the target words of all pair sentences.

    mode "mean": [n_neurons], the mean over both conditions; "resample": [2 * n_pairs, n_neurons], the
    a-sentences' rows first, then the b-sentences'; "zero": None. Both conditions are pooled (and Ablator
    draws resample donors equally from both halves), so the replacement carries no net gender. Note where
    the values come from: the visible target words, while the lesions write them at a [MASK].
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "zero":
        return None
    c = _contrast(contrast)
    layer = check_layer(model, layer)
    vals = mlp_activations(model, tokenizer, c.sentences_a + c.sentences_b,
                           [c.a] * len(c.pairs) + [c.b] * len(c.pairs), [layer], site="post")[layer]
    return vals.mean(0) if mode == "mean" else vals


def resample_donors(n_rows: int, n: int, seed: int = 0) -> np.ndarray:
    """Row indices of n resample donors out of n_rows, drawn without replacement (seeded). An even
    n_rows is two conditions stacked (rows [0, n_rows/2) and [n_rows/2, n_rows)): n/2 donors come from
    each half (the extra one of an odd n from the first), so the donors carry no net condition."""
    rng = np.random.default_rng(seed)
    n = min(n, n_rows)
    if n_rows % 2 or n_rows < 2:
        return np.sort(rng.choice(n_rows, size=n, replace=False))
    half = n_rows // 2
    first = rng.choice(half, size=(n + 1) // 2, replace=False)
    second = half + rng.choice(half, size=n // 2, replace=False)
    return np.sort(np.concatenate([first, second]))


# --- ablators --------------------------------------------------------------------------------
class Ablator:
    """Logit differences (target - foil) at fixed texts under many ablations of one layer.

    Backed by helpers.fast (the residual stream is cached once, then many neuron sets are
    ablated in batches). diffs(sets) -> [n_sets, n_texts]; clean -> [n_texts]; top1(set) ->
    arg-max word ids [n_texts] with that set ablated (None: no ablation).
    mode "resample": a set's neurons take their values from one stimulus sentence (a row of
    `values`); the logit difference is averaged over `n_resamples` such sentences, drawn once
    (seeded) and shared by every set, so random sets and the chosen set see the same donors.
    With an even number of rows, `values` is read as two conditions stacked (as ablation_values
    returns them) and half the donors come from each, so the donors carry no net condition.
    top1 under "resample" uses the first donor sentence.
    """

    def __init__(self, model, tokenizer, layer: int, texts: Sequence[str], positions: Sequence[int] | None,
                 target: str, foil: str, mode: str = "zero", values=None, site: str = "post", seed: int = 0,
                 n_resamples: int = 8):
        self.model, self.tokenizer, self.layer = model, tokenizer, check_layer(model, layer)
        self.texts = [texts] if isinstance(texts, str) else list(texts)
        if positions is None:
            self.positions = [p[0] for p in mask_positions(tokenizer, self.texts)]
        else:   # one token index per text; mask_positions' one-element lists work too
            from .fast import _one_position
            self.positions = [_one_position(i, p) for i, p in enumerate(
                [positions] if isinstance(positions, (int, np.integer)) else positions)]
        if len(self.positions) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.positions)} positions")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.target, self.foil, self.mode, self.values, self.site, self.seed = target, foil, mode, values, site, seed
        self.width = n_neurons(model, layer)
        self._clean = None
        self._samples = None
        if mode in ("mean", "resample") and values is None:
            raise ValueError(f"mode={mode!r} needs `values` (see ablation_values)")
        if mode == "resample":
            values = np.asarray(values, dtype=np.float32)
            if values.ndim != 2 or values.shape[1] != self.width:
                raise ValueError(f"mode='resample': values must be [n_samples, {self.width}], got {values.shape}")
            self._samples = values[resample_donors(len(values), n_resamples, seed)]

    @staticmethod
    def _fast():
        try:
            from . import fast
        except ImportError as e:  # pragma: no cover - depends on the kit's state
            raise ImportError("helpers.fast (batched ablation) is needed for the lesion controls") from e
        return fast

    @property
    def clean(self) -> np.ndarray:
        if self._clean is None:
            self._clean = np.asarray(self._fast().clean_logit_diffs(
                self.model, self.tokenizer, self.texts, self.positions, self.target, self.foil), dtype=np.float64)
        return self._clean

    def diffs(self, sets) -> np.ndarray:
        sets = np.asarray(sets, dtype=bool)
        if sets.ndim == 1:
            sets = sets[None]
        fast = self._fast()
        donors = [self.values] if self.mode != "resample" else list(self._samples)
        mode = "mean" if self.mode == "resample" else self.mode
        out = np.zeros((len(sets), len(self.texts)))
        for v in donors:
            out += fast.ablation_logit_diffs(self.model, self.tokenizer, self.texts, self.positions, self.layer,
                                             sets, self.target, self.foil, mode=mode, values=v, site=self.site)
        return out / len(donors)

    @torch.no_grad()
    def top1(self, neurons=None) -> np.ndarray:
        texts = [model_text(self.tokenizer, t) for t in self.texts]
        with right_padding(self.tokenizer):              # positions count from the start of each text
            enc = self.tokenizer(texts, return_tensors="pt", padding=True).to(next(self.model.parameters()).device)
        rows = torch.arange(len(self.texts))
        pos = torch.tensor(self.positions)
        with eval_mode(self.model):
            if neurons is None:
                logits = self.model(**enc).logits
            else:
                mode, values = (("mean", self._samples[0]) if self.mode == "resample" else (self.mode, self.values))
                with ablate_neurons(self.model, self.layer, neurons, positions=[[p] for p in self.positions],
                                    mode=mode, values=values, site=self.site, verbose=False):
                    logits = self.model(**enc).logits
        return logits[rows, pos].argmax(-1).cpu().numpy()

    def label(self) -> str:
        return model_label(self.model)


class AdditiveAblator:
    """A synthetic ground truth: ablating neuron j lowers text i's logit difference by weights[j, i].

    diffs(sets) = clean - sets @ weights. Used by the tests (and to teach what a null
    looks like when you know the answer). width = weights.shape[0].
    """

    def __init__(self, weights, clean, layer: int = 0, name: str = "additive toy"):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.clean = np.asarray(clean, dtype=np.float64)
        if self.weights.ndim != 2 or self.weights.shape[1] != self.clean.size:
            raise ValueError(f"weights must be [width, n_texts={self.clean.size}], got {self.weights.shape}")
        self.width, self.layer, self.name = self.weights.shape[0], layer, name
        self.mode, self.target, self.foil = "zero", "target", "foil"
        self.texts = [f"text {i}" for i in range(self.clean.size)]

    def diffs(self, sets) -> np.ndarray:
        sets = np.asarray(sets, dtype=np.float64)
        return self.clean[None] - (sets[None] if sets.ndim == 1 else sets) @ self.weights

    def top1(self, neurons=None):
        return None

    def label(self) -> str:
        return self.name


# --- the lesion test -------------------------------------------------------------------------
@dataclass
class LesionResult:
    """One neuron set ablated at the [MASK] of each text, against random sets of the same size."""

    model_label: str
    layer: int
    mode: str
    target: str
    foil: str
    n_neurons: int
    n_texts: int
    clean: np.ndarray           # [n_texts] logit(target) - logit(foil), no ablation
    ablated: np.ndarray         # [n_texts] the same with the set ablated
    null_ablated: np.ndarray    # [n_draws, n_texts] the same with each random set ablated
    top1_changed: float         # fraction of texts whose top-1 word (whole vocabulary) changed; NaN if unknown
    label: str = "chosen"       # what the set is, for summaries ("'her' neurons")
    pool: str = "all"
    texts: list[str] | None = None
    width: int | None = None    # neurons in the layer (for the pool="others" caveat)

    @property
    def drops(self) -> np.ndarray:
        """Per text: clean - ablated logit difference (positive = the lesion hurt the target)."""
        return self.clean - self.ablated

    @property
    def observed(self) -> float:
        return float(self.drops.mean())

    @property
    def null(self) -> np.ndarray:
        """Mean drop over texts for each random set: [n_draws]."""
        return (self.clean[None] - self.null_ablated).mean(1)

    @property
    def null_mean(self) -> float:
        return float(self.null.mean())

    @property
    def n_draws(self) -> int:
        return int(self.null_ablated.shape[0])

    @property
    def p(self) -> float:
        return permutation_p(self.observed, self.null)

    @property
    def z(self) -> float:
        sd = self.null.std(ddof=1) if self.n_draws > 1 else np.nan
        return float((self.observed - self.null.mean()) / sd) if sd > 0 else float("nan")

    def band(self, lo: float = 5, hi: float = 95) -> tuple[float, float]:
        return tuple(float(x) for x in np.percentile(self.null, [lo, hi]))

    @property
    def n_right(self) -> int:
        """Texts where the clean model prefers target over foil."""
        return int(np.sum(self.clean > 0))

    @property
    def n_flipped(self) -> int:
        """Of those, texts where the lesioned model no longer does."""
        return int(np.sum((self.clean > 0) & (self.ablated <= 0)))

    @property
    def flip_rate(self) -> float:
        return self.n_flipped / self.n_right if self.n_right else float("nan")

    @property
    def null_flip_rate(self) -> float:
        """Mean flip rate of the random sets."""
        if not self.n_right:
            return float("nan")
        right = self.clean > 0
        return float(np.mean(np.sum(right[None] & (self.null_ablated <= 0), 1) / self.n_right))

    def short(self) -> str:
        """One line for tables: drop, random band, z, p, flips."""
        lo, hi = self.band()
        return (f"{self.n_neurons} neurons, {self.mode}: drop {self.observed:.2f} (random {self.null_mean:.2f}, "
                f"5-95% {lo:.2f} to {hi:.2f}), z = {self.z:.1f}, p = {_fmt_p(self.p)}, "
                f"flips {self.n_flipped}/{self.n_right}")

    def table(self, texts: Sequence[str] | None = None, width: int = 60) -> str:
        """Per text: logit difference and P(target | target or foil) before and after, and whether it flipped."""
        texts = texts or self.texts or [f"text {i}" for i in range(self.n_texts)]
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731  P(target) among the two words
        head = f"{'text':<{width}}  {'diff clean':>10} {'lesioned':>8}  P({self.target}) clean -> lesioned"
        rows = [head]
        for t, c, a in zip(texts, self.clean, self.ablated):
            t = t if len(t) <= width else t[: width - 3] + "..."
            flag = "  FLIP" if c > 0 >= a else ""
            rows.append(f"{t:<{width}}  {c:>+10.2f} {a:>+8.2f}  {sig(c):.2f} -> {sig(a):.2f}{flag}")
        return "\n".join(rows)

    def summary(self) -> str:
        lo, hi = self.band()
        t1 = "" if not np.isfinite(self.top1_changed) else \
            f"; top-1 word changed in {round(self.top1_changed * self.n_texts)} of {self.n_texts}"
        return (f"{self.model_label}, layer {self.layer}: {self.n_neurons} {self.label} {self.mode}-ablated at "
                f"{self.n_texts} [MASK]s: logit({self.target})-logit({self.foil}) drops by {self.observed:.2f} "
                f"(random sets of {self.n_neurons}: {self.null.mean():.2f}, 90% band {lo:.2f} to {hi:.2f}; "
                f"z = {self.z:.1f}, p = {_fmt_p(self.p)}, {self.n_draws} draws); "
                f"{self.target}->{self.foil} flips {self.n_flipped} of {self.n_right} "
                f"(random sets: {self.null_flip_rate * self.n_right:.1f}){t1}{self.pool_caveat()}")

    def pool_caveat(self) -> str:
        """A warning for pool="others" when the set is a large share of the layer: the random sets then
        come from the few neurons left over, so they are nearly the complement, not random."""
        if self.pool != "others" or not self.width or self.n_neurons <= POOL_WARN * self.width:
            return ""
        return (f". CAVEAT: pool='others' with a set of {self.n_neurons / self.width:.0%} of the layer: the random "
                f"sets come from the other {self.width - self.n_neurons} neurons, so they are close to the "
                f"complement of the set, not random (use pool='all')")


def lesion_test_with(ablator, neurons, n_draws: int = 1000, seed: int = 0, pool: str = "all",
                     label: str = "chosen", top1: bool = True) -> LesionResult:
    """lesion_test on any ablator (a model-backed `Ablator` or a synthetic `AdditiveAblator`)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    if pool not in ("all", "others"):
        raise ValueError(f"pool must be 'all' or 'others', got {pool!r}")
    mask = as_mask(neurons, ablator.width)
    k = int(mask.sum())
    if k == 0:
        raise ValueError(f"the neuron set for layer {ablator.layer} is empty: nothing to lesion "
                         f"(no neuron passed the criterion?)")
    null_sets = random_neuron_sets(ablator.width, k, n_draws, seed, exclude=mask if pool == "others" else None)
    d = ablator.diffs(np.vstack([mask[None], null_sets]))
    changed = float("nan")
    if top1:
        before = ablator.top1(None)
        if before is not None:
            changed = float(np.mean(before != ablator.top1(mask)))
    return LesionResult(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, k,
                        len(ablator.clean), np.asarray(ablator.clean, float), d[0], d[1:], changed, label, pool,
                        list(ablator.texts), ablator.width)


def lesion_test(model, tokenizer, layer: int, neurons, texts, positions=None, target: str | None = None,
                foil: str | None = None, n_draws: int = 1000, seed: int = 0, mode: str = "zero", values=None,
                site: str = "post", pool: str = "all", label: str = "chosen") -> LesionResult:
    """Ablate `neurons` of `layer` at positions[i] of texts[i] and compare with random sets of the same size.

    texts: [MASK] texts, or an EvalSet (which brings positions, target and foil); positions:
    token index per text (None: the first [MASK]). target/foil: the right and the wrong word.
    n_draws >= 200 is advised (the smallest possible p is 1/(n_draws + 1)). mode "mean"/"resample"
    need `values` (see ablation_values). site: where the neurons are edited ("post" = after GELU).
    """
    if isinstance(texts, EvalSet):
        texts, positions, target, foil = texts.texts, texts.positions, texts.target, texts.foil
    if target is None or foil is None:
        raise ValueError("lesion_test needs target and foil words (e.g. target='her', foil='him'), "
                         "or an EvalSet in place of texts")
    ab = Ablator(model, tokenizer, layer, texts, positions, target, foil, mode, values, site, seed)
    return lesion_test_with(ab, neurons, n_draws, seed, pool, label)


def compare_modes(model, tokenizer, layer: int, neurons, evalset: EvalSet, contrast="him_her",
                  modes=MODES, n_draws: int = 200, seed: int = 0, label: str = "chosen") -> dict[str, LesionResult]:
    """The same set ablated three ways (zero, mean, resample), each against its own random-set null.

    mean/resample values: post-GELU values at the contrast's target words (ablation_values).
    """
    out = {}
    for m in modes:
        vals = ablation_values(model, tokenizer, contrast, layer, m)
        out[m] = lesion_test(model, tokenizer, layer, neurons, evalset, n_draws=n_draws, seed=seed, mode=m,
                             values=vals, label=label)
    return out


# --- dose-response ---------------------------------------------------------------------------
def log_grid(max_k: int, n: int = 10) -> np.ndarray:
    """About n integers from 1 to max_k, evenly spaced on a log scale (distinct, sorted)."""
    if max_k < 1:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.logspace(0, np.log10(max_k), n)).astype(int))


@dataclass
class DoseResponse:
    """Top-k neurons (by signed t) ablated for each k, against random sets of k."""

    model_label: str
    layer: int
    mode: str
    target: str
    foil: str
    ks: np.ndarray              # [n_k]
    observed: np.ndarray        # [n_k] mean drop of the top-k set
    null: np.ndarray            # [n_k, n_draws] mean drop of each random set of k
    n_significant: int          # how many of the ranked neurons pass FDR (marked on the plot)

    @property
    def p(self) -> np.ndarray:
        return np.array([permutation_p(o, n) for o, n in zip(self.observed, self.null)])

    def band(self, lo: float = 5, hi: float = 95) -> tuple[np.ndarray, np.ndarray]:
        return np.percentile(self.null, lo, axis=1), np.percentile(self.null, hi, axis=1)

    def summary(self) -> str:
        lo, hi = self.band()
        rows = [f"k={k}: {o:.2f} [{a:.2f}, {b:.2f}]" for k, o, a, b in zip(self.ks, self.observed, lo, hi)]
        return (f"{self.model_label}, layer {self.layer}, top-k '{self.target}' neurons {self.mode}-ablated, "
                f"drop in logit({self.target})-logit({self.foil}) [random 5-95%]: " + "; ".join(rows))


def dose_response_with(ablator, scores, ks=None, n_draws: int = 200, seed: int = 0,
                       n_significant: int = 0) -> DoseResponse:
    """Ablate the k highest-`scores` neurons (only those with score > 0) for each k, plus random sets of k.

    scores: [width], larger = more target-like (e.g. sign * t). ks default: a log grid up to
    the number of positive scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.flatnonzero(np.isfinite(scores) & (scores > 0))
    order = cand[np.argsort(-scores[cand], kind="stable")]
    ks = log_grid(order.size) if ks is None else np.asarray(sorted({int(k) for k in ks}))
    if ks.size == 0:
        raise ValueError("no neuron has a positive score, so there is no top-k set to ablate")
    if ks.max() > order.size:
        raise ValueError(f"k={ks.max()} asked for but only {order.size} neurons have a positive score")
    obs, null = [], []
    clean = np.asarray(ablator.clean, float)
    for i, k in enumerate(ks):
        top = np.zeros(ablator.width, dtype=bool)
        top[order[:k]] = True
        sets = np.vstack([top[None], random_neuron_sets(ablator.width, int(k), n_draws, seed + i)])
        drops = (clean[None] - ablator.diffs(sets)).mean(1)
        obs.append(drops[0])
        null.append(drops[1:])
    return DoseResponse(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, ks,
                        np.array(obs), np.array(null), int(n_significant))


def dose_response(model, tokenizer, layer: int, test: PairedResult, sign: int, evalset: EvalSet, ks=None,
                  n_draws: int = 200, seed: int = 0, mode: str = "zero", values=None) -> DoseResponse:
    """Top-k neurons by sign * t (sign +1: a-neurons, -1: b-neurons) ablated at the eval [MASK]s, k on a log grid."""
    ab = Ablator(model, tokenizer, layer, evalset.texts, evalset.positions, evalset.target, evalset.foil, mode,
                 values, seed=seed)
    sig = test.positive if sign > 0 else test.negative
    return dose_response_with(ab, sign * test.t, ks, n_draws, seed, int(sig.sum()))


# --- layer sweep -----------------------------------------------------------------------------
@dataclass
class LayerSweep:
    """Per layer: neurons passing FDR (both directions) and the lesion effect of the target-word set."""

    model_label: str
    where: str
    target: str
    foil: str
    layers: list[int]
    width: list[int]
    n_pos: list[int]            # a > b neurons per layer
    n_neg: list[int]            # b > a neurons per layer
    results: dict[int, LesionResult | None]   # None where the set is empty
    labels: tuple[str, str] = ("a", "b")

    def frac_significant(self) -> np.ndarray:
        return (np.array(self.n_pos) + np.array(self.n_neg)) / np.array(self.width)

    def p_holm(self) -> dict[int, float]:
        """Holm-adjusted permutation p per lesioned layer: testing several layers and reporting the best
        is a multiple comparison. Holm controls the family-wise error under any dependence."""
        done = [L for L in self.layers if self.results[L] is not None]
        return dict(zip(done, holm([self.results[L].p for L in done])))

    def summary(self) -> str:
        a, b = self.labels
        rows = []
        ph = self.p_holm()
        for L, w, npos, nneg in zip(self.layers, self.width, self.n_pos, self.n_neg):
            r = self.results[L]
            eff = "not lesioned" if r is None else (f"drop {r.observed:.2f} vs random {r.null.mean():.2f} "
                                               f"(z {r.z:.1f}, p {_fmt_p(r.p)}, Holm {_fmt_p(ph[L])})")
            rows.append(f"L{L}: {npos} {a}>{b}, {nneg} {b}>{a} ({(npos + nneg) / w:.0%}), {eff}")
        head = f"{self.model_label}, selected at the {self.where}, lesion for '{self.target}'"
        if ph:
            n = next(r.n_draws for r in self.results.values() if r is not None)
            head += f" (Holm over the {len(ph)} lesioned layers; {n} draws, so no p below {_fmt_p(1 / (n + 1))})"
        return head + ": " + "; ".join(rows)


def layer_sweep(model, tokenizer, selection: Selection, evalset: EvalSet, n_draws: int = 200, seed: int = 0,
                mode: str = "zero", values=None, max_fraction: float = 1.0) -> LayerSweep:
    """For every layer of `selection`: FDR counts, and the evalset target's neurons lesioned against the null.

    values: per layer {layer: values} for mean/resample. max_fraction: skip the lesion where
    the set holds more than this fraction of the layer (random sets would be nearly the same set).
    n_draws=0: counts only, no lesion.
    """
    c = selection.contrast
    sign = word_sign(c, evalset.target)
    results, widths = {}, []
    for L in selection.layers:
        t = selection.tests[L]
        widths.append(len(t.t))
        mask = t.positive if sign > 0 else t.negative
        if n_draws == 0 or mask.sum() == 0 or mask.mean() > max_fraction:
            results[L] = None
            continue
        vals = values.get(L) if isinstance(values, dict) else values
        results[L] = lesion_test(model, tokenizer, L, mask, evalset, n_draws=n_draws, seed=seed, mode=mode,
                                 values=vals, label=f"'{evalset.target}' neurons")
    return LayerSweep(selection.model_label, selection.where, evalset.target, evalset.foil, selection.layers,
                      widths, [int(selection.tests[L].positive.sum()) for L in selection.layers],
                      [int(selection.tests[L].negative.sum()) for L in selection.layers], results, (c.a, c.b))


# --- criteria: t-test vs Wilcoxon, BH vs BY, Cohen's d ------------------------------------------
@dataclass
class Criteria:
    """Which neurons pass under different criteria, from one paired data set."""

    t: np.ndarray
    p_t: np.ndarray
    p_w: np.ndarray             # Wilcoxon signed-rank p
    d: np.ndarray               # Cohen's d_z
    q: float
    passed: dict[str, np.ndarray]   # "t BH", "t BY", "Wilcoxon BH", "Wilcoxon BY", "|d| > 0.8" -> bool [width]
    n_pairs: int

    def counts(self) -> dict[str, int]:
        return {k: int(v.sum()) for k, v in self.passed.items()}

    def summary(self) -> str:
        w = len(self.t)
        parts = [f"{k}: {v} ({v / w:.0%})" for k, v in self.counts().items()]
        both = int((self.passed["t BH"] & self.passed["Wilcoxon BH"]).sum())
        return (f"of {w} neurons over {self.n_pairs} pairs (q={self.q}): " + ", ".join(parts)
                + f"; t BH and Wilcoxon BH agree on {both}")


def compare_criteria(a, b, q: float = 0.05, d_threshold: float = 0.8) -> Criteria:
    """t-test and Wilcoxon p per neuron, each with BH and BY; plus Cohen's d_z. a, b: [n_pairs, n_neurons]."""
    tt = paired_ttest_fdr(a, b, q=q, method="bh")
    p_w = paired_wilcoxon(a, b)
    d = cohens_dz(a, b)
    passed = {"t BH": tt.significant, "t BY": fdr(tt.p, q, "by")[0],
              "Wilcoxon BH": fdr(p_w, q, "bh")[0], "Wilcoxon BY": fdr(p_w, q, "by")[0],
              f"|d| > {d_threshold}": np.nan_to_num(np.abs(d)) > d_threshold}
    return Criteria(tt.t, tt.p, p_w, d, q, passed, tt.n_pairs)


# --- held-out selection ----------------------------------------------------------------------
@dataclass
class HeldOut:
    """Neurons selected on k-1 folds of pairs, checked on the held-out fold."""

    folds: list[tuple[np.ndarray, np.ndarray]]
    selected: np.ndarray        # [k, width] int8: +1 a>b, -1 b>a, 0 not selected (training folds)
    t_train: np.ndarray         # [k, width]
    t_test: np.ndarray          # [k, width]
    p_test: np.ndarray          # [k, width] two-sided p on the held-out fold
    d_train: np.ndarray         # [k, width] Cohen's d_z on training folds
    d_test: np.ndarray          # [k, width] on the held-out fold
    full: PairedResult          # all pairs at once (the in-sample analysis)
    alpha: float

    @property
    def k(self) -> int:
        return len(self.folds)

    @property
    def n_selected(self) -> np.ndarray:
        return np.sum(self.selected != 0, axis=1)

    @property
    def stability(self) -> float:
        """Mean pairwise Jaccard of the selected sets (direction included) across folds."""
        vals = []
        for i, j in combinations(range(self.k), 2):
            si, sj = self.selected[i], self.selected[j]
            union = np.sum((si != 0) | (sj != 0))
            vals.append(np.sum((si != 0) & (si == sj)) / union if union else 1.0)
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def replication(self) -> float:
        """Of all fold-selected neurons, the fraction with the same sign and p < alpha on the held-out fold."""
        sel = self.selected != 0
        ok = sel & (np.sign(self.t_test) == self.selected) & (self.p_test < self.alpha)
        return float(ok.sum() / sel.sum()) if sel.any() else float("nan")

    @property
    def same_sign(self) -> float:
        """Of all fold-selected neurons, the fraction whose held-out t has the same sign (chance: 0.5)."""
        sel = self.selected != 0
        return float((sel & (np.sign(self.t_test) == self.selected)).sum() / sel.sum()) if sel.any() else float("nan")

    def d_corrected(self) -> tuple[np.ndarray, np.ndarray]:
        """(d_train, d_test) [k, width], each times Hedges' J = 1 - 3 / (4 (n - 1) - 1) for its fold's n
        pairs. Raw d_z is biased upward, more so on few pairs (J = 0.94 at 13 pairs, 0.985 at 51), so raw
        held-out values would look larger than in-sample ones for that reason alone."""
        j = lambda n: 1 - 3 / (4 * (n - 1) - 1)  # noqa: E731
        jt = np.array([j(len(tr)) for tr, _ in self.folds])[:, None]
        js = np.array([j(len(te)) for _, te in self.folds])[:, None]
        return self.d_train * jt, self.d_test * js

    def effect_sizes(self) -> tuple[float, float]:
        """Mean d_z of the selected neurons, signed so that the selected direction is positive and
        corrected for sample size (d_corrected): on the pairs that selected them, and on held-out pairs."""
        sel = self.selected != 0
        if not sel.any():
            return float("nan"), float("nan")
        sgn = self.selected[sel]
        d_in, d_out = self.d_corrected()
        return float(np.mean(d_in[sel] * sgn)), float(np.nanmean(d_out[sel] * sgn))

    def summary(self) -> str:
        d_in, d_out = self.effect_sizes()
        return (f"{self.k} folds: {int(self.n_selected.mean())} neurons selected per fold (all pairs: "
                f"{int(self.full.significant.sum())}); stability (mean Jaccard) {self.stability:.2f}; held-out "
                f"replication (same sign, p < {self.alpha}) {self.replication:.0%}, same sign {self.same_sign:.0%}; "
                f"signed d_z (corrected for sample size) in-sample {d_in:.2f} vs held-out {d_out:.2f}")


def heldout_selection(a, b, k: int = 5, q: float = 0.05, method: str = "bh", seed: int = 0,
                      alpha: float = 0.05) -> HeldOut:
    """Select neurons (t-test + FDR) on k-1 folds of pairs; test each selected neuron on the held-out fold.

    a, b: [n_pairs, n_neurons]; each held-out fold needs at least MIN_HELDOUT = 3 pairs (k <= n_pairs // 3).
    Replication criterion: same sign and uncorrected p < alpha on the
    held-out pairs (one test per selected neuron; the held-out fold is small, so this is lenient on
    false positives and harsh on power; compare it with the same-sign rate, whose chance level is 50%).
    """
    # keep the input's float type: the tests judge "no variance" at that precision (stats._varies)
    a, b = (x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x) for x in (a, b))
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be [n_pairs, n_neurons] arrays of one shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if 2 <= k <= n and n // k < MIN_HELDOUT:
        raise ValueError(f"k={k} folds of {n} pairs leave {n // k} pair(s) in the smallest held-out fold; a "
                         f"held-out d_z needs at least {MIN_HELDOUT} (Hedges' J is 0 at 2 pairs): use k <= "
                         f"{max(2, n // MIN_HELDOUT)}" + ("" if n >= 2 * MIN_HELDOUT else
                                                          f", and at least {2 * MIN_HELDOUT} pairs"))
    folds = kfold_pairs(n, k, seed)
    w = a.shape[1]
    sel = np.zeros((k, w), np.int8)
    t_tr, t_te, p_te, d_tr, d_te = (np.full((k, w), np.nan) for _ in range(5))
    for f, (tr, te) in enumerate(folds):
        r = paired_ttest_fdr(a[tr], b[tr], q=q, method=method)
        sel[f] = r.positive.astype(np.int8) - r.negative.astype(np.int8)
        t_tr[f], d_tr[f] = r.t, r.d
        h = paired_ttest_fdr(a[te], b[te], q=q, method=method)    # its t, p and d_z; its FDR is not used
        t_te[f], p_te[f], d_te[f] = h.t, h.p, h.d
    return HeldOut(folds, sel, t_tr, t_te, p_te, d_tr, d_te, paired_ttest_fdr(a, b, q=q, method=method), alpha)


@dataclass
class HeldOutLesion:
    """Per fold: neurons chosen on the training pairs, lesioned at the [MASK] texts of training vs held-out pairs."""

    model_label: str
    layer: int
    where: str
    target: str
    foil: str
    n_neurons: list[int]
    in_sample: list[LesionResult | None]
    held_out: list[LesionResult | None]

    def _mean(self, rs, attr) -> float:
        v = [getattr(r, attr) for r in rs if r is not None]
        return float(np.mean(v)) if v else float("nan")

    def summary(self) -> str:
        return (f"{self.model_label}, layer {self.layer}, '{self.target}' neurons selected at the {self.where} on "
                f"{len(self.n_neurons)} training folds ({int(np.mean(self.n_neurons))} per fold): drop in-sample "
                f"{self._mean(self.in_sample, 'observed'):.2f} (z {self._mean(self.in_sample, 'z'):.1f}) vs held-out "
                f"{self._mean(self.held_out, 'observed'):.2f} (z {self._mean(self.held_out, 'z'):.1f}); "
                f"random sets: {self._mean(self.held_out, 'null_mean'):.2f}")


def heldout_lesion(model, tokenizer, selection: Selection, layer: int, evalset: EvalSet, k: int = 5, seed: int = 0,
                   n_draws: int = 200, mode: str = "zero", values=None, match_size: bool = True) -> HeldOutLesion:
    """k-fold over the selection's pairs: choose the evalset target's neurons on k-1 folds, lesion at the
    [MASK] texts of the training pairs (in-sample) and of the held-out pairs.

    evalset must have one text per pair, in pair order (e.g. masked_set of the context contrast).
    match_size: evaluate in-sample on a random subset of the training pairs as large as the held-out
    fold (seeded), so both estimates average over the same number of texts.
    """
    a, b = selection.acts_a[layer], selection.acts_b[layer]
    if len(evalset) != a.shape[0]:
        raise ValueError(f"evalset has {len(evalset)} texts but the selection has {a.shape[0]} pairs; "
                         f"held-out evaluation needs one text per pair")
    sign = word_sign(selection.contrast, evalset.target)
    ins, outs, sizes = [], [], []
    rng = np.random.default_rng(seed)
    for f, (tr, te) in enumerate(kfold_pairs(a.shape[0], k, seed)):
        r = paired_ttest_fdr(a[tr], b[tr], q=selection.tests[layer].q, method=selection.tests[layer].method)
        mask = r.positive if sign > 0 else r.negative
        sizes.append(int(mask.sum()))
        tr_eval = np.sort(rng.choice(tr, size=len(te), replace=False)) if match_size else tr
        for rows, sink in ((tr_eval, ins), (te, outs)):
            sink.append(None if not mask.any() else lesion_test(
                model, tokenizer, layer, mask, evalset.subset(rows), n_draws=n_draws, seed=seed + f, mode=mode,
                values=values, label=f"'{evalset.target}' neurons"))
    return HeldOutLesion(selection.model_label, layer, selection.where, evalset.target, evalset.foil, sizes, ins, outs)


