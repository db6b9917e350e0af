"""Random-neuron nulls: is a lesion bigger than the same lesion of random neurons?

    lesion_test(model, tok, layer, neurons, evalset | texts, ...) -> LesionResult: chosen set vs random sets
    lesion_test_with(ablator, neurons, ...)      the same on any ablator (Ablator, AdditiveAblator)
    compare_modes(...)                           -> {mode: LesionResult}: zero / mean / resample ablation
    draws_text(results)                          "after 20-1000 of up to 1000 draws": the draws several tests used
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
- sequential p (the default, stop_at=h): random sets are drawn in a fixed order until h of them reach
  the observed drop, p = h / (draws used); if fewer than h of n_draws do, p is the permutation p over
  all n_draws (Besag & Clifford 1991, helpers.stats.sequential_p). Valid at every stopping point, never
  below 1 / (1 + n_draws); a strong effect uses all n_draws and gets exactly the fixed-n p; a set with
  no effect stops after a few dozen draws. stop_at=None draws all n_draws.
- z = (observed - mean(null)) / sd(null) over the draws used: the effect in units of the random sets'
  spread; NaN where the random sets do not vary (a set that is the whole layer: every random set is it).
- flip rate: of the texts where the clean model prefers target over foil (difference > 0), the
  fraction where the lesioned model does not (difference <= 0). top-1 change: the fraction of all
  texts whose arg-max word over the whole vocabulary changes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .. import _args, fast
from ..arch import DEFAULT_SITE, check_layer, model_label, n_layers, n_neurons
from ..lesion import MODES, ablate_neurons, ablation_values
from ..readout import argmax_at
from ..stats import SequentialP, fmt_p, permutation_p, sequential_p
from ..stimuli import EvalSet, mask_positions
from .draws import STOP_AT, SetStream, check_draws, draw_null

POOL_WARN = 0.2   # pool="others" gets a caveat in summaries when the chosen set is more than this share of its layer
CALL_SETS, CALL_SETS_TOP = 50, 250   # Ablator.call_sets: a diffs call's fixed cost in sets (below the top two
                                     # layers / at them), for the batch schedule of helpers.controls.draws


def as_mask(neurons, width: int) -> np.ndarray:
    """Boolean mask [width] from a mask or an index list (errors name the bad index)."""
    m = np.zeros(width, dtype=bool)
    m[_args.neuron_index(neurons, width).numpy()] = True
    return m


def random_neuron_sets(width: int, size: int, n: int, seed: int = 0, exclude=None) -> np.ndarray:
    """n random sets of `size` distinct neurons out of `width`: bool array [n, width].

    exclude: neurons (mask or indices) never drawn; used for pool="others". Seeded, so the
    same call gives the same sets; the first m rows are those of any larger n (draws.SetStream).
    """
    return SetStream(width, size, seed, exclude).take(n)


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
    with_layer(layer, mode, values) -> an Ablator of the same texts at another layer or mode that shares
    this one's clean logit differences and clean top-1 words (they do not depend on the lesion).
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
        self.n_resamples = n_resamples
        self.width = n_neurons(model, layer)
        self._shared = {}           # "clean", "top1": what no lesion changes, shared by with_layer
        self._samples = None
        if mode in ("mean", "resample") and values is None:
            raise ValueError(f"mode={mode!r} needs `values` (see ablation_values)")
        if mode == "resample":
            values = np.asarray(values, dtype=np.float32)
            if values.ndim != 2 or values.shape[1] != self.width:
                raise ValueError(f"mode='resample': values must be [n_samples, {self.width}], got {values.shape}")
            self._samples = values[resample_donors(len(values), n_resamples, seed)]

    def with_layer(self, layer: int, mode: str | None = None, values=None, seed: int | None = None) -> "Ablator":
        """The same texts, words and site at `layer` (and `mode` with `values`), sharing the clean results."""
        mode = self.mode if mode is None else mode
        other = Ablator(self.model, self.tokenizer, layer, self.texts, self.positions, self.target, self.foil, mode,
                        values, self.site, self.seed if seed is None else seed, self.n_resamples)
        other._shared = self._shared
        return other

    @property
    def clean(self) -> np.ndarray:
        if "clean" not in self._shared:
            self._shared["clean"] = np.asarray(fast.clean_logit_diffs(
                self.model, self.tokenizer, self.texts, self.positions, self.target, self.foil), dtype=np.float64)
        return self._shared["clean"]

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
            if "top1" not in self._shared:
                self._shared["top1"] = argmax_at(self.model, self.tokenizer, self.texts, self.positions)
            return self._shared["top1"]
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

    @property
    def call_sets(self) -> int:
        """What one diffs call costs beyond its sets, in sets (draws.next_batch keeps batches above it): each
        call re-runs the layers up to the lesion for every text. Measured on bert-base at 12 [MASK] texts: at
        layer 9 a call costs about 45 sets; at the top two layers, where a set costs only the read token, ~250."""
        top = self.layer >= n_layers(self.model) - 2
        return CALL_SETS_TOP if top else CALL_SETS


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
    max_draws: int | None = None    # n: the most random sets (None: n_draws, a fixed-n test)
    stop_at: int | None = None      # h: stopped once h random sets reached the drop (None: never early)

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
    def rule(self) -> SequentialP:
        """The p-value's rule and the draws it used (helpers.stats.sequential_p over the draws kept)."""
        return sequential_p(self.observed, self.null, self.stop_at, self.max_draws or max(self.n_draws, 1))

    @property
    def p(self) -> float:
        """The sequential p (rule); 1 for a whole-layer set, whose random sets are all the set itself."""
        if not self.n_draws:
            return float("nan")
        return 1.0 if self.whole_layer else self.rule.p

    @property
    def whole_layer(self) -> bool:
        """True when every random set is the chosen set itself (it holds every neuron of the layer)."""
        return bool(self.width) and self.n_neurons >= self.width and self.pool == "all"

    @property
    def z(self) -> float:
        """(observed - mean(null)) / sd(null); NaN where the random sets do not vary beyond rounding."""
        if self.n_draws < 2 or self.whole_layer:
            return float("nan")
        sd, scale = self.null.std(ddof=1), max(np.abs(self.null).max(), abs(self.observed))
        return float((self.observed - self.null.mean()) / sd) if sd > 1e-9 * scale else float("nan")

    def p_text(self, sep: str = " = ") -> str:
        """'p = 0.312 after 32 of up to 1000 draws', or 'p = 0.002 after 1000 draws' (all of them used)."""
        r = self.rule
        upto = f" of up to {r.n}" if r.stopped and r.draws < r.n else ""
        return f"p{sep}{fmt_p(self.p)} after {self.n_draws}{upto} draws"

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
                f"5-95% {lo:.2f} to {hi:.2f}), z = {self.z:.1f}, {self.p_text()}, "
                f"flips {self.n_flipped}/{self.n_right}{self.layer_note()}")

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
                f"z = {self.z:.1f}, {self.p_text()}); " + self._flips()
                + f"{t1}{self.pool_caveat()}{self.layer_note()}")

    def layer_note(self) -> str:
        """A note for a set that is the whole layer: random sets of its size are all the set itself."""
        if not self.whole_layer:
            return ""
        return (f". NOTE: the set is the whole layer ({self.width} neurons), so every random set of its size is "
                f"the set itself: z is undefined (nan) and p = 1 says nothing; lesion fewer neurons")

    def draws_text(self) -> str:
        """'32 of up to 1000 draws' or '1000 draws' (all used): the random sets behind the p."""
        return self.p_text().split(" after ", 1)[1]

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
                     label: str = "chosen", top1: bool = True, stop_at: int | None = STOP_AT) -> LesionResult:
    """lesion_test on any ablator (a model-backed `Ablator` or a synthetic `AdditiveAblator`).

    n_draws: the most random sets; stop_at: stop once this many reach the chosen set's drop (the
    sequential p, see the module docstring; None: all n_draws). top1: also count the texts whose top-1
    word changes (two full forwards; summaries that do not print it can skip it)."""
    n_draws, stop_at = check_draws(n_draws, stop_at)
    if pool not in ("all", "others"):
        raise ValueError(f"pool must be 'all' or 'others', got {pool!r}")
    mask = as_mask(neurons, ablator.width)
    k = int(mask.sum())
    if k == 0:      # nothing passed the criterion: a result that says so, so a notebook can go on
        clean = np.asarray(ablator.clean, float)
        return LesionResult(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, 0,
                            len(clean), clean, clean.copy(), np.zeros((0, len(clean))), float("nan"), label, pool,
                            list(ablator.texts), ablator.width, n_draws, stop_at)
    stream = SetStream(ablator.width, k, seed, exclude=mask if pool == "others" else None)
    d = draw_null(ablator, mask, stream, n_draws, stop_at)
    changed = float("nan")
    if top1:
        before = ablator.top1(None)
        if before is not None:
            changed = float(np.mean(before != ablator.top1(mask)))
    return LesionResult(ablator.label(), ablator.layer, ablator.mode, ablator.target, ablator.foil, k,
                        len(ablator.clean), np.asarray(ablator.clean, float), d.chosen, d.null, changed, label, pool,
                        list(ablator.texts), ablator.width, n_draws, stop_at)


def lesion_test(model, tokenizer, layer: int, neurons, texts, positions=None, target: str | None = None,
                foil: str | None = None, n_draws: int = 1000, seed: int = 0, mode: str = "zero", values=None,
                site: str = DEFAULT_SITE, pool: str = "all", label: str = "chosen",
                stop_at: int | None = STOP_AT) -> LesionResult:
    """Ablate `neurons` of `layer` at positions[i] of texts[i] and compare with random sets of the same size.

    texts: [MASK] texts, or an EvalSet (which brings positions, target and foil); positions:
    token index per text (None: the first [MASK]). target/foil: the right and the wrong word.
    n_draws: the most random sets, >= 200 advised (the smallest possible p is 1/(n_draws + 1)).
    stop_at: the sequential rule's h (module docstring): stop once that many random sets reach the
    chosen set's drop (a set with no effect stops after a few dozen); None: always all n_draws. mode "mean"/"resample"
    need `values` (see ablation_values). site: where the neurons are edited ("pre", the default, before
    the nonlinearity; take mean/resample values at the same site). An empty neuron set (nothing passed
    the criterion) gives a result whose summary says so, with no null (result.empty).
    """
    check_draws(n_draws, stop_at)
    if isinstance(texts, EvalSet):
        texts, positions, target, foil = texts.texts, texts.positions, texts.target, texts.foil
    if target is None or foil is None:
        raise ValueError("lesion_test needs target and foil words (e.g. target='her', foil='him'), "
                         "or an EvalSet in place of texts")
    ab = Ablator(model, tokenizer, layer, texts, positions, target, foil, mode, values, site, seed)
    return lesion_test_with(ab, neurons, n_draws, seed, pool, label, stop_at=stop_at)


def compare_modes(model, tokenizer, layer: int, neurons, evalset: EvalSet, contrast="him_her",
                  modes=MODES, n_draws: int = 200, seed: int = 0, label: str = "chosen",
                  stop_at: int | None = STOP_AT) -> dict[str, LesionResult]:
    """The same set ablated three ways (zero, mean, resample), each against its own random-set null.

    mean/resample values: the contrast's MLP values at its target words, at the ablated site (ablation_values;
    captured once: the mean is the mean of the resample rows). The modes share the clean logit differences.
    n_draws, stop_at: as in lesion_test (the most random sets per mode; the sequential rule's h, None: all).
    An empty set (nothing passed) gives an empty LesionResult per mode (result.empty), without ablating anything.
    """
    n_draws, stop_at = check_draws(n_draws, stop_at)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"modes must be among {MODES}, got {bad[0]!r}")
    ab = Ablator(model, tokenizer, layer, evalset.texts, evalset.positions, evalset.target, evalset.foil, seed=seed)
    if not as_mask(neurons, ab.width).any():
        none = lesion_test_with(ab, np.zeros(ab.width, bool), n_draws, seed, label=label, stop_at=stop_at)
        return {m: replace(none, mode=m) for m in modes}
    rows = ablation_values(model, tokenizer, contrast, layer, "resample") if set(modes) - {"zero"} else None
    values = {"zero": None, "mean": None if rows is None else rows.mean(0), "resample": rows}
    return {m: lesion_test_with(ab.with_layer(layer, m, values[m]), neurons, n_draws, seed, label=label,
                                stop_at=stop_at) for m in modes}


def draws_text(results) -> str:
    """The draws a family of lesion tests used: 'after 20-1000 of up to 1000 draws' ('after 1000 draws'
    when every test used all of them); empty results and None are skipped ('' if none is left)."""
    rs = [r for r in results if r is not None and not r.empty]
    if not rs:
        return ""
    used, most = [r.n_draws for r in rs], max(r.max_draws or r.n_draws for r in rs)
    span = f"{min(used)}" if min(used) == max(used) else f"{min(used)}-{max(used)}"
    return f"after {span} draws" if min(used) == most else f"after {span} of up to {most} draws"
