"""Random-neuron nulls: is a lesion bigger than the same lesion of random neurons?

    lesion_test(model, tok, layer, neurons, evalset | texts, ...) -> LesionResult: chosen set vs random sets
    lesion_test_with(ablator, neurons, ...)      the same on any ablator (Ablator, AdditiveAblator)
    compare_modes(...)                           -> {mode: LesionResult}: zero / mean / resample ablation
    permutation_p(observed, null), random_neuron_sets(width, size, n, seed), as_mask, resample_donors
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
from dataclasses import dataclass, replace

import numpy as np

from .. import _args, fast
from ..arch import DEFAULT_SITE, check_layer, model_label, n_neurons
from ..lesion import MODES, ablate_neurons, ablation_values
from ..readout import argmax_at
from ..stats import fmt_p
from ..stimuli import EvalSet, mask_positions

POOL_WARN = 0.2   # pool="others" gets a caveat in summaries when the chosen set is more than this share of its layer


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
    m[_args.neuron_index(neurons, width).numpy()] = True
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
                 target: str, foil: str, mode: str = "zero", values=None, site: str = DEFAULT_SITE, seed: int = 0,
                 n_resamples: int = 8):
        self.model, self.tokenizer, self.layer = model, tokenizer, check_layer(model, layer)
        self.texts = [texts] if isinstance(texts, str) else list(texts)
        if positions is None:        # the first [MASK] of each text
            positions = [p[0] for p in mask_positions(tokenizer, self.texts)]
        self.positions = _args.one_position_per_text(positions, len(self.texts))
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

    @property
    def clean(self) -> np.ndarray:
        if self._clean is None:
            self._clean = np.asarray(fast.clean_logit_diffs(
                self.model, self.tokenizer, self.texts, self.positions, self.target, self.foil), dtype=np.float64)
        return self._clean

    def diffs(self, sets) -> np.ndarray:
        sets = np.asarray(sets, dtype=bool)
        if sets.ndim == 1:
            sets = sets[None]
        donors = [self.values] if self.mode != "resample" else list(self._samples)
        mode = "mean" if self.mode == "resample" else self.mode
        out = np.zeros((len(sets), len(self.texts)))
        for v in donors:
            out += fast.ablation_logit_diffs(self.model, self.tokenizer, self.texts, self.positions, self.layer,
                                             sets, self.target, self.foil, mode=mode, values=v, site=self.site)
        return out / len(donors)

    def top1(self, neurons=None) -> np.ndarray:
        """The top word's id at each text's position [n_texts], with `neurons` ablated there (None: clean)."""
        if neurons is None:
            return argmax_at(self.model, self.tokenizer, self.texts, self.positions)
        mode, values = (("mean", self._samples[0]) if self.mode == "resample" else (self.mode, self.values))
        if self.tokenizer.pad_token is None:      # one text per pass: ablate each text's own position
            return np.array([self._top1_one(i, neurons, mode, values) for i in range(len(self.texts))])
        with ablate_neurons(self.model, self.layer, neurons, positions=[[p] for p in self.positions],
                            mode=mode, values=values, site=self.site, verbose=False):
            return argmax_at(self.model, self.tokenizer, self.texts, self.positions)

    def _top1_one(self, i: int, neurons, mode: str, values) -> int:
        with ablate_neurons(self.model, self.layer, neurons, positions=[[self.positions[i]]], mode=mode,
                            values=values, site=self.site, verbose=False):
            return int(argmax_at(self.model, self.tokenizer, [self.texts[i]], [self.positions[i]])[0])

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
    def empty(self) -> bool:
        """True when the set has no neurons (none passed the criterion): nothing was lesioned."""
        return self.n_neurons == 0

    def nothing(self) -> str:
        """The sentence that stands for every number of an empty result."""
        return (f"{self.model_label}, layer {self.layer}: no {self.label.strip()} passed the criterion, so there is "
                f"nothing to lesion (logit({self.target})-logit({self.foil}) unchanged at {self.n_texts} [MASK]s)")

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
        return float(self.null.mean()) if self.n_draws else float("nan")

    @property
    def n_draws(self) -> int:
        return int(self.null_ablated.shape[0])

    @property
    def p(self) -> float:
        return permutation_p(self.observed, self.null)

    @property
    def z(self) -> float:
        sd = self.null.std(ddof=1) if self.n_draws > 1 else np.nan
        return float((self.observed - self.null.mean()) / sd) if sd > 0 else float("nan")   # nan sd: False

    def band(self, lo: float = 5, hi: float = 95) -> tuple[float, float]:
        if not self.n_draws:
            return float("nan"), float("nan")
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
        if not self.n_right or not self.n_draws:
            return float("nan")
        right = self.clean > 0
        return float(np.mean(np.sum(right[None] & (self.null_ablated <= 0), 1) / self.n_right))

    def short(self) -> str:
        """One line for tables: drop, random band, z, p, flips."""
        if self.empty:
            return f"0 neurons: no {self.label.strip()} passed, nothing to lesion"
        lo, hi = self.band()
        return (f"{self.n_neurons} neurons, {self.mode}: drop {self.observed:.2f} (random {self.null_mean:.2f}, "
                f"5-95% {lo:.2f} to {hi:.2f}), z = {self.z:.1f}, p = {fmt_p(self.p)}, "
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
        if self.empty:
            return self.nothing()
        lo, hi = self.band()
        t1 = "" if not np.isfinite(self.top1_changed) else \
            f"; top-1 word changed in {round(self.top1_changed * self.n_texts)} of {self.n_texts}"
        return (f"{self.model_label}, layer {self.layer}: {self.n_neurons} {self.label} {self.mode}-ablated at "
                f"{self.n_texts} [MASK]s: logit({self.target})-logit({self.foil}) drops by {self.observed:.2f} "
                f"(random sets of {self.n_neurons}: {self.null.mean():.2f}, 90% band {lo:.2f} to {hi:.2f}; "
                f"z = {self.z:.1f}, p = {fmt_p(self.p)}, {self.n_draws} draws); " + self._flips()
                + f"{t1}{self.pool_caveat()}")

    def _flips(self) -> str:
        if not self.n_right:        # a model that gets every text wrong: nothing to flip
            return f"the clean model prefers '{self.foil}' at every text, so none can flip"
        return (f"{self.target}->{self.foil} flips {self.n_flipped} of {self.n_right} "
                f"(random sets: {self.null_flip_rate * self.n_right:.1f})")

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
    if k == 0:      # nothing passed the criterion: a result that says so, so a notebook can go on
        clean = np.asarray(ablator.clean, float)
        return LesionResult(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, 0,
                            len(clean), clean, clean.copy(), np.zeros((0, len(clean))), float("nan"), label, pool,
                            list(ablator.texts), ablator.width)
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
                site: str = DEFAULT_SITE, pool: str = "all", label: str = "chosen") -> LesionResult:
    """Ablate `neurons` of `layer` at positions[i] of texts[i] and compare with random sets of the same size.

    texts: [MASK] texts, or an EvalSet (which brings positions, target and foil); positions:
    token index per text (None: the first [MASK]). target/foil: the right and the wrong word.
    n_draws >= 200 is advised (the smallest possible p is 1/(n_draws + 1)). mode "mean"/"resample"
    need `values` (see ablation_values). site: where the neurons are edited ("pre", the default, before
    the nonlinearity; take mean/resample values at the same site). An empty neuron set (nothing passed
    the criterion) gives a result whose summary says so, with no null (result.empty).
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

    mean/resample values: the contrast's MLP values at its target words, at the ablated site (ablation_values).
    An empty set (nothing passed) gives an empty LesionResult per mode (result.empty), without ablating anything.
    """
    if not as_mask(neurons, n_neurons(model, layer)).any():
        ab = Ablator(model, tokenizer, layer, evalset.texts, evalset.positions, evalset.target, evalset.foil)
        none = lesion_test_with(ab, np.zeros(ab.width, bool), n_draws, seed, label=label)
        return {m: replace(none, mode=m) for m in modes}
    out = {}
    for m in modes:
        vals = ablation_values(model, tokenizer, contrast, layer, m)
        out[m] = lesion_test(model, tokenizer, layer, neurons, evalset, n_draws=n_draws, seed=seed, mode=m,
                             values=vals, label=label)
    return out


