"""Random-set nulls drawn batch by batch, stopped by the Besag-Clifford rule (helpers.stats.sequential_p).

    check_draws(n_draws, stop_at)            the two numbers checked before any work
    SetStream(width, size, seed, exclude)    random neuron sets in one fixed order: take(b) -> the next b sets
    next_batch(done, exceed, h, n, call)     the batch schedule: how many sets to evaluate next
    draw_null(ablator, chosen, stream, n, h) -> Draws: the chosen set's logit differences, the null draws used

Why batches: a model-backed ablator (helpers.fast) evaluates many sets per call far faster per set than
one at a time, but a sequential test may stop after a dozen draws. The rule is applied draw by draw
over the draws in their fixed order, so the p-value (and the draws kept) are exactly those of one
set at a time, whatever the batch sizes; a batch only decides how many sets are evaluated ahead.
Few, large batches: each call of helpers.fast.ablation_logit_diffs first re-runs the layers below the
lesion for every text, a fixed cost that the ablator states in sets (`call_sets`: on bert-base at layer 9
and 12 [MASK] texts a call costs what about 45 sets cost; at the top two layers, where a set costs little,
about 250). So the schedule takes at most two calls for a set with no effect or a strong one, rarely more
in between, and a single call of all n where the draws a stop could save are fewer than a call costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _args
from ..stats import SequentialP, sequential_p

STOP_AT = 10        # the default h: stop once this many random sets reach the chosen set's drop
FIRST_BATCH = 4     # the first batch is FIRST_BATCH * h draws: a set with no effect (p >= ~0.3) stops there
MIN_BATCH = 16      # later batches hold at least this many sets (fewer make the fast null's products small)
MARGIN = 1.25       # a later batch holds MARGIN x the draws the rule is expected to still need


def check_draws(n_draws, stop_at, what: str = "n_draws") -> tuple[int, int | None]:
    """(n_draws, stop_at) after checking them, before any work: n_draws a positive integer (the most random
    sets), stop_at a positive integer (Besag-Clifford's h) or None (no early stop). Errors name the valid choices."""
    for name, x, none_ok in ((what, n_draws, False), ("stop_at", stop_at, True)):
        if x is None and none_ok:
            continue
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"{name} must be a positive integer{' or None' if none_ok else ''} (e.g. {name}="
                            f"{STOP_AT if none_ok else 200}), got {x!r} ({type(x).__name__})")
        if x < 1:
            raise ValueError(f"{name} must be a positive integer{' or None' if none_ok else ''} (e.g. {name}="
                             f"{STOP_AT if none_ok else 200}), got {x!r}")
    return int(n_draws), None if stop_at is None else int(stop_at)


class SetStream:
    """Random sets of `size` distinct neurons out of `width` (none from `exclude`), in one fixed order.

    take(b) -> bool [b, width], the next b sets. Seeded: the sets come out the same however they are
    batched (take(3) then take(5) gives the rows of take(8)), and as random_neuron_sets(width, size, n, seed).
    Each set is the `size` smallest of fresh uniform keys over the pool, so every set is equally likely.
    """

    def __init__(self, width: int, size: int, seed: int = 0, exclude=None):
        if exclude is None:
            self.pool = np.arange(width)
        else:
            m = np.zeros(width, dtype=bool)
            m[_args.neuron_index(exclude, width).numpy()] = True
            self.pool = np.flatnonzero(~m)
        if not 0 <= size <= self.pool.size:
            raise ValueError(f"cannot draw {size} neurons from a pool of {self.pool.size} (width {width})")
        self.width, self.size = width, size
        self.rng = np.random.default_rng(seed)

    def take(self, b: int) -> np.ndarray:
        out = np.zeros((b, self.width), dtype=bool)
        if self.size and b:
            pick = np.argsort(self.rng.random((b, self.pool.size)), axis=1)[:, :self.size]
            out[np.arange(b)[:, None], self.pool[pick]] = True
        return out


def next_batch(done: int, exceed: int, h: int | None, n: int, call: int = 0) -> int:
    """How many sets to evaluate next, after `done` draws of which `exceed` reached the observed value.

    First FIRST_BATCH * h (all n for a fixed-n test, h None): a set with no effect stops there. Then, with
    no exceedance yet (a strong effect: the rule will most likely need all n), all the rest; otherwise
    MARGIN x the draws the rule still needs at the estimate exceed / done (h - exceed more exceedances),
    at least MIN_BATCH. call: what one more call costs, in sets; a batch is never smaller than that, nor
    leaves fewer than that many draws for a later call (it takes them too). Never past n.
    """
    left = n - done
    if h is None or h > n:
        return left
    if done == 0:
        b = FIRST_BATCH * h
    elif exceed == 0:
        b = left
    else:
        b = max(MIN_BATCH, math.ceil(MARGIN * (h - exceed) * done / exceed))
    b = max(b, call)
    return left if left - b <= call else b


@dataclass
class Draws:
    """A null drawn until the rule stopped: the chosen set's differences and the random sets' in draw order."""

    chosen: np.ndarray          # [n_texts] logit differences with the chosen set ablated
    null: np.ndarray            # [L, n_texts] the same for the L random sets the rule used
    computed: int               # random sets evaluated (>= L: a batch's sets after the stop are dropped)
    rule: SequentialP


def draw_null(ablator, chosen: np.ndarray, stream: SetStream, n: int, h: int | None = STOP_AT,
              schedule=None) -> Draws:
    """Evaluate `chosen` (bool [width]) and random sets from `stream` on `ablator` until the rule stops.

    The statistic is the mean drop over texts, clean - ablated. n: the most draws; h: Besag-Clifford's h
    (None: all n draws). schedule(done, exceed, h, n) -> the next batch size: any positive sizes give the
    same result, the chosen set goes with the first batch. None: next_batch with the ablator's `call_sets`
    (what one call costs, in sets; 0 where it has none).
    """
    if schedule is None:
        call = int(getattr(ablator, "call_sets", 0))
        schedule = lambda done, exceed, h_, n_: next_batch(done, exceed, h_, n_, call)  # noqa: E731
    clean = np.asarray(ablator.clean, dtype=np.float64)
    d = np.asarray(ablator.diffs(np.vstack([chosen[None], stream.take(_size(schedule, 0, 0, h, n))])), np.float64)
    chosen_d, rows = d[0], [d[1:]]
    observed = float(np.mean(clean - chosen_d))
    while True:
        null = np.concatenate(rows)
        drops = (clean[None] - null).mean(1)
        hits = np.cumsum(drops >= observed)                      # NaN never reaches it
        if len(null) >= n or (h is not None and hits[-1] >= h):
            rule = sequential_p(observed, drops, h, n)
            kept = int(np.flatnonzero(hits == h)[0]) + 1 if rule.stopped else n
            return Draws(chosen_d, null[:kept], len(null), rule)
        b = _size(schedule, len(null), int(hits[-1]), h, n)
        rows.append(np.asarray(ablator.diffs(stream.take(b)), dtype=np.float64))


def _size(schedule, done: int, exceed: int, h, n: int) -> int:
    """The schedule's next batch size, checked and kept within the n - done draws left."""
    b = schedule(done, exceed, h, n)
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
        raise ValueError(f"the batch schedule must give a positive integer, got {b!r} after {done} of {n} draws")
    return int(min(b, n - done))
