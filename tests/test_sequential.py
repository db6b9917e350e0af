"""Sequential Monte-Carlo p-values (Besag & Clifford 1991; helpers.stats.sequential_p, helpers.controls.draws)
and the controls that use them (issue 26): the rule itself, its validity under a true null, the fixed-n p
under a strong effect, independence from the batch schedule, Holm over sequential p-values, and the errors
raised before any work. Synthetic ablators only (helpers.controls.AdditiveAblator): seconds, no model."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import controls as C
from helpers.controls.draws import STOP_AT, SetStream, check_draws, draw_null, next_batch
from helpers.controls.sweeps import HeldOutLesion, LayerSweep
from helpers.stats import holm, permutation_p, sequential_p

ALPHA = 0.05


def null_toy(seed: int, width: int = 60, n_texts: int = 4) -> C.AdditiveAblator:
    """No true effect: every neuron's weights are drawn alike, so a fixed set is exchangeable with random ones."""
    rng = np.random.default_rng(seed)
    return C.AdditiveAblator(rng.normal(size=(width, n_texts)), rng.normal(size=n_texts) + 2)


def int_toy(seed: int = 0, width: int = 40, n_texts: int = 3, planted: int = 0) -> C.AdditiveAblator:
    """Integer weights (exact sums whatever the batch); `planted` neurons 0.. with a large effect."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(width, n_texts)).astype(float)
    w[:planted] += 20
    return C.AdditiveAblator(w, np.full(n_texts, 5.0))


def mc_bound(n: int, alpha: float = ALPHA) -> float:
    """alpha + 3 Monte-Carlo standard errors of a rejection rate over n independent runs."""
    return alpha + 3 * np.sqrt(alpha * (1 - alpha) / n)


# --- the rule ----------------------------------------------------------------------------------
def test_sequential_p_stops_at_the_h_th_exceedance_and_otherwise_is_the_fixed_n_p():
    null = np.array([5, 1, 7, 0, 9, 2, 8, 3], dtype=float)          # >= 4 at draws 1, 3, 5, 7
    r = sequential_p(4.0, null, h=2, n=8)
    assert (r.p, r.draws, r.exceed, r.stopped) == (2 / 3, 3, 2, True)
    assert r.text() == "p 0.667 after 3 draws"
    r = sequential_p(8.5, null, h=2, n=8)                            # one exceedance in all 8: never stops
    assert (r.p, r.draws, r.stopped) == ((1 + 1) / (1 + 8), 8, False)
    assert r.p == permutation_p(8.5, null)
    assert sequential_p(100.0, null, h=2, n=8).p == 1 / 9          # never below 1 / (n + 1)
    assert sequential_p(4.0, null, h=None, n=8).p == permutation_p(4.0, null)   # h None: fixed n
    assert sequential_p(4.0, null[:3], h=2, n=1000).p == 2 / 3     # draws after the stop are not needed
    with pytest.raises(ValueError, match="needs up to n = 1000"):
        sequential_p(8.5, null, h=2, n=1000)                       # not stopped and fewer than n draws given
    with pytest.raises(ValueError, match="h .* positive integer"):
        sequential_p(4.0, null, h=0, n=8)


def test_permutation_p_of_minus_infinity_is_one():
    """An observed drop of -inf: every draw reaches it (main gave NaN); +inf: the floor 1 / (1 + N)."""
    null = np.arange(9.0)
    assert permutation_p(-np.inf, null) == 1.0 and C.permutation_p(-np.inf, null) == 1.0
    assert permutation_p(np.inf, null) == 1 / 10
    assert np.isnan(permutation_p(np.nan, null))


# --- validity under a true null ----------------------------------------------------------------
def test_rejection_rate_under_a_true_null_is_at_most_alpha():
    """An additive toy with no effect, 1500 seeds: P(p <= u) <= u + 3 Monte-Carlo SEs at u = 0.05 (and 0.01,
    0.2), and the rule stops early on most seeds (the point of it: few draws where the answer cannot change)."""
    n_runs = 1500
    rs = [C.lesion_test_with(null_toy(s), np.arange(6), n_draws=400, seed=s, top1=False) for s in range(n_runs)]
    p = np.array([r.p for r in rs])
    for u in (0.01, ALPHA, 0.2):
        assert np.mean(p <= u) <= mc_bound(n_runs, u), (u, np.mean(p <= u))
    assert p.min() >= 1 / 401
    used = np.array([r.n_draws for r in rs])
    assert np.median(used) <= 3 * STOP_AT and np.mean(used) < 0.25 * 400


# --- a strong effect: exactly the fixed-n test ------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_strong_effect_gives_exactly_the_fixed_n_p_and_null(seed):
    ab = int_toy(seed, planted=5)
    seq = C.lesion_test_with(ab, np.arange(5), n_draws=300, seed=seed)
    fixed = C.lesion_test_with(ab, np.arange(5), n_draws=300, seed=seed, stop_at=None)
    assert seq.n_draws == fixed.n_draws == 300
    assert seq.p == fixed.p == permutation_p(fixed.observed, fixed.null) == 1 / 301
    np.testing.assert_array_equal(seq.null_ablated, fixed.null_ablated)
    assert "after 300 draws" in seq.summary() and "of up to" not in seq.summary()


def test_a_moderate_effect_that_never_stops_also_gets_the_fixed_n_p():
    """Fewer than h of the n random sets reach the drop: the rule uses all n and p = (1 + G) / (1 + n)."""
    for seed in range(40):
        ab = null_toy(seed)
        fixed = C.lesion_test_with(ab, np.arange(6), n_draws=200, seed=seed, stop_at=None)
        g = int(np.sum(fixed.null >= fixed.observed))
        seq = C.lesion_test_with(ab, np.arange(6), n_draws=200, seed=seed)
        if g < STOP_AT:
            assert seq.n_draws == 200 and seq.p == fixed.p
        else:                                   # stopped at the h-th exceedance among the same draws
            hit = int(np.flatnonzero(np.cumsum(fixed.null >= fixed.observed) == STOP_AT)[0]) + 1
            assert seq.n_draws == hit and seq.p == STOP_AT / hit


# --- the batch schedule changes nothing but the work -------------------------------------------
@pytest.mark.parametrize("planted", [0, 3])
def test_p_and_kept_draws_do_not_depend_on_the_batch_schedule(planted):
    ab = int_toy(1, planted=planted)
    chosen = np.zeros(ab.width, bool)
    chosen[:3] = True
    schedules = {"one at a time": lambda d, e, h, n: 1, "sevens": lambda d, e, h, n: 7,
                 "all at once": lambda d, e, h, n: n, "default": None, "plain": next_batch,
                 "calls of 60": lambda d, e, h, n: next_batch(d, e, h, n, 60),
                 "odd": lambda d, e, h, n: 1 + (d * 13) % 29}
    got = {name: draw_null(ab, chosen, SetStream(ab.width, 3, seed=4), 500, 10, schedule=f)
           for name, f in schedules.items()}
    ref = got["one at a time"]
    for name, d in got.items():
        assert (d.rule.p, d.rule.draws, d.rule.stopped) == (ref.rule.p, ref.rule.draws, ref.rule.stopped), name
        np.testing.assert_array_equal(d.null, ref.null, err_msg=name)
        np.testing.assert_array_equal(d.chosen, ref.chosen, err_msg=name)
    assert got["all at once"].computed == 500 and ref.computed == len(ref.null)
    assert len(ref.null) == (500 if planted else ref.rule.draws)


def test_set_stream_is_the_same_however_it_is_taken():
    a = SetStream(30, 4, seed=2)
    parts = np.vstack([a.take(3), a.take(0), a.take(5)])
    np.testing.assert_array_equal(parts, SetStream(30, 4, seed=2).take(8))
    np.testing.assert_array_equal(parts, C.random_neuron_sets(30, 4, 8, seed=2))
    assert (parts.sum(1) == 4).all()


def test_next_batch_schedule():
    """Few calls: each call of the fast null re-runs the layers below the lesion first."""
    assert next_batch(0, 0, 10, 1000) == 40                      # first: 4 h (p ~ 0.5 stops there)
    assert next_batch(40, 0, 10, 1000) == 960                    # no exceedance yet: a strong effect, all the rest
    assert next_batch(40, 5, 10, 1000) == 50                     # 1.25 x the 40 more expected at p ~ 1/8
    assert next_batch(40, 9, 10, 1000) == 16                     # at least MIN_BATCH
    assert next_batch(990, 3, 10, 1000) == 10                    # never past n
    assert next_batch(0, 0, None, 300) == 300                    # fixed n: everything at once
    assert next_batch(0, 0, 400, 300) == 300                     # h > n: never stops early
    # call: one more call costs as much as 50 sets
    assert next_batch(0, 0, 10, 1000, call=50) == 50             # no batch smaller than a call
    assert next_batch(0, 0, 10, 80, call=50) == 80               # 40 now would leave 40 < 50: all at once
    assert next_batch(40, 9, 10, 1000, call=50) == 50
    assert next_batch(100, 5, 10, 260, call=50) == 160           # 125 would leave 35 for a third call: take them


# --- Holm over sequential p-values --------------------------------------------------------------
def _sweep(abs_by_layer: dict, n_draws: int, seed: int, stop_at=STOP_AT) -> LayerSweep:
    results = {L: C.lesion_test_with(ab, np.arange(4), n_draws=n_draws, seed=seed + L, label="'her' neurons",
                                     top1=False, stop_at=stop_at) for L, ab in abs_by_layer.items()}
    layers = list(results)
    w = [ab.width for ab in abs_by_layer.values()]
    return LayerSweep("toy", "target word", "target", "foil", layers, w, [1] * len(w), [4] * len(w), results,
                      ("foil", "target"))


def test_holm_over_sequential_p_controls_the_family_wise_error():
    """Six layers, none with an effect, 400 seeds: Holm rejects any layer at most alpha + 3 MC SEs of the time."""
    n_runs, any_reject = 400, 0
    for s in range(n_runs):
        sweep = _sweep({L: null_toy(1000 * s + L, width=30) for L in range(6)}, n_draws=200, seed=s)
        ph = sweep.p_holm()
        assert list(ph.values()) == list(holm([sweep.results[L].p for L in sweep.layers]))
        any_reject += min(ph.values()) <= ALPHA
    assert any_reject / n_runs <= mc_bound(n_runs)


def test_holm_over_sequential_p_finds_the_one_layer_with_an_effect():
    """One strong layer among six: it uses all n draws, p = 1/(n+1), and passes Holm; the others stop early."""
    abs_by_layer = {L: null_toy(L) for L in range(6)}
    abs_by_layer[3] = int_toy(3, width=60, n_texts=4, planted=4)
    sweep = _sweep(abs_by_layer, n_draws=200, seed=0)
    ph = sweep.p_holm()
    assert sweep.results[3].p == 1 / 201 and ph[3] == pytest.approx(6 / 201) and ph[3] < ALPHA
    assert sweep.draws[3] == 200 and all(sweep.draws[L] < 200 for L in (0, 1, 2, 4, 5))
    text = sweep.summary()
    assert "up to 200 draws, stopping once 10 reach the drop, so no p below 0.005" in text
    assert f"{sum(sweep.draws.values())} draws in all" in text and "L3: " in text and "after 200 draws" in text
    fixed = _sweep(abs_by_layer, n_draws=200, seed=0, stop_at=None)
    assert fixed.results[3].p == sweep.results[3].p and "(Holm over the 6 lesioned layers; 200 draws" in \
        fixed.summary()


def test_draws_per_layer_figure_says_what_it_shows():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from helpers.plots import controls as P
    abs_by_layer = {L: null_toy(L) for L in range(3)}
    abs_by_layer[1] = int_toy(3, width=60, n_texts=4, planted=4)
    sweep = _sweep(abs_by_layer, n_draws=100, seed=0)
    fig = P.draws_per_layer(sweep)
    ax = fig.axes[0]
    assert "random sets drawn per layer" in ax.get_title() and "toy" in ax.get_title()
    assert "h = 10" in ax.get_title()
    heights = sorted(round(p.get_height()) for p in ax.patches)
    assert heights == sorted(sweep.draws.values())
    from test_plots import legend_colours_missing, tick_label_overlaps
    assert tick_label_overlaps(fig) == [] and legend_colours_missing(fig) == []
    plt.close(fig)
    none = LayerSweep("toy", "target word", "target", "foil", [0, 1], [10, 10], [0, 0], [0, 0],
                      {0: None, 1: None}, ("foil", "target"))
    fig = P.draws_per_layer(none)
    assert "no layer was lesioned" in " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


# --- every summary says how many draws ---------------------------------------------------------
def test_summaries_report_the_draws_used():
    ab = null_toy(0)
    r = C.lesion_test_with(ab, np.arange(6), n_draws=1000, seed=0)
    assert r.n_draws < 1000
    for text in (r.summary(), r.short(), r.p_text()):
        assert f"after {r.n_draws} of up to 1000 draws" in text
    dr = C.dose_response_with(ab, np.linspace(1, -1, ab.width), ks=[1, 5], n_draws=300)
    assert len(dr.draws) == 2 and all(f"after {d} draws" in dr.summary() for d in dr.draws)
    assert "p from up to 300 random sets (no p below 0.003)" in dr.summary()
    assert dr.p.tolist() == [rule.p for rule in dr.rules]
    ho = HeldOutLesion("toy", 0, "[MASK]", "target", "foil", [6, 6], [r, r], [r, None])
    assert f"after {r.n_draws} of up to 1000 draws" in ho.summary() and "held-out p per fold" in ho.summary()
    big = C.lesion_test_with(int_toy(0, planted=6), np.arange(6), n_draws=50)
    assert C.draws_text([r, None, big]) == f"after {r.n_draws}-50 of up to 1000 draws"
    assert C.draws_text([big, big]) == "after 50 draws"


def test_dose_response_with_a_fixed_n_keeps_every_draw():
    ab = int_toy(0, planted=3)
    scores = np.r_[np.full(3, 5.0), np.linspace(1, 0.1, ab.width - 3)]
    dr = C.dose_response_with(ab, scores, ks=[1, 3, 10], n_draws=60, stop_at=None)
    assert dr.draws.tolist() == [60, 60, 60]
    assert dr.p.tolist() == [permutation_p(o, n) for o, n in zip(dr.observed, dr.null)]
    assert dr.p[1] <= 3 / 61


# --- a set that is the whole layer ---------------------------------------------------------------
def test_whole_layer_set_has_no_z_and_says_why():
    ab = null_toy(0, width=12)
    r = C.lesion_test_with(ab, np.arange(12), n_draws=50)
    assert r.whole_layer and np.isnan(r.z) and r.p == 1.0
    for text in (r.summary(), r.short()):
        assert "the set is the whole layer (12 neurons)" in text and "z is undefined" in text
    part = C.lesion_test_with(ab, np.arange(11), n_draws=50)
    assert not part.whole_layer and "whole layer" not in part.summary()


# --- errors before any work ----------------------------------------------------------------------
@pytest.mark.parametrize("kw, err, match", [
    (dict(n_draws=10.0), TypeError, r"n_draws must be a positive integer .*got 10.0 \(float\)"),
    (dict(n_draws=0), ValueError, r"n_draws must be a positive integer .*got 0"),
    (dict(n_draws=True), TypeError, r"n_draws must be a positive integer"),
    (dict(stop_at=0), ValueError, r"stop_at must be a positive integer or None .*got 0"),
    (dict(stop_at=2.5), TypeError, r"stop_at must be a positive integer or None"),
])
def test_draw_arguments_are_checked_with_their_valid_values(kw, err, match):
    ab = null_toy(0)
    with pytest.raises(err, match=match):
        C.lesion_test_with(ab, np.arange(3), **kw)
    with pytest.raises(err, match=match):
        C.dose_response_with(ab, np.linspace(1, -1, ab.width), **kw)
    # before any work: no model is touched (None would fail later with another error)
    with pytest.raises(err, match=match):
        C.lesion_test(None, None, 0, [1], ["a [MASK] b"], None, "a", "b", **kw)
    with pytest.raises(err, match=match):
        C.compare_modes(None, None, 0, [1], None, **kw)
    with pytest.raises(err, match=match):
        C.dose_response(None, None, None, 0, None, **kw)
    with pytest.raises(err, match=match):
        C.heldout_lesion(None, None, None, 0, None, **kw)
    if kw.get("n_draws") != 0:                   # layer_sweep: n_draws=0 means counts only
        with pytest.raises(err, match=match.replace("n_draws must", r"n_draws \(0: counts only\) must")):
            C.layer_sweep(None, None, None, None, **kw)


def test_dose_response_with_zero_draws_names_the_argument():
    """main raised an IndexError from inside the null here."""
    with pytest.raises(ValueError, match="n_draws must be a positive integer"):
        C.dose_response_with(null_toy(0), np.linspace(1, -1, 60), n_draws=0)


def test_check_draws_passes_numpy_integers():
    assert check_draws(np.int64(5), np.int32(2)) == (5, 2) and check_draws(5, None) == (5, None)
