"""helpers.controls: the statistics on known cases (synthetic arrays, an additive toy), and the
model-backed controls on a tiny random BERT. Fast: no stand-in, no downloads."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats as st

from helpers import controls as C
from helpers.lesion import ablation_values
from helpers.stats import fdr, paired_ttest_fdr
from helpers.stimuli import MASK, cloze_set, load_contrast, mask_word, masked_set


# --- synthetic paired data ---------------------------------------------------------------------
def paired_data(n_pairs=40, width=400, planted=(), shift=1.5, seed=0):
    """a, b: [n_pairs, width] with a per-pair offset shared by both conditions; `planted` neurons get
    a + shift (positive) or a - shift (negative, for indices listed as negatives via a tuple (idx, sign))."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_pairs, width))
    a = base + rng.normal(size=(n_pairs, width))
    b = base + rng.normal(size=(n_pairs, width))
    for j, sign in planted:
        a[:, j] += sign * shift
    return a, b


PLANTED = [(j, 1) for j in range(10)] + [(j, -1) for j in range(10, 20)]


def test_planted_effect_is_found():
    a, b = paired_data(planted=PLANTED, shift=2.0)
    crit = C.compare_criteria(a, b, q=0.05)
    for name in ("t BH", "t BY", "Wilcoxon BH"):
        hits = crit.passed[name]
        assert hits[:20].all(), f"{name} missed planted neurons"
        assert hits[20:].sum() <= 3, f"{name}: {hits[20:].sum()} false positives"
    assert np.all(np.sign(crit.t[:10]) > 0) and np.all(np.sign(crit.t[10:20]) < 0)
    assert np.all(crit.d[:10] > 0.8)


def test_null_data_uniform_p_and_few_hits():
    a, b = paired_data(n_pairs=30, width=2000, seed=1)
    r = paired_ttest_fdr(a, b, q=0.05, method="bh")
    assert st.kstest(r.p, "uniform").pvalue > 0.01
    assert abs(np.mean(r.p < 0.05) - 0.05) < 0.02
    assert r.significant.sum() <= 2
    crit = C.compare_criteria(a, b)
    assert crit.counts()["Wilcoxon BH"] <= 2 and crit.counts()["t BY"] <= 2


@pytest.mark.parametrize("seed", range(5))
def test_by_never_rejects_more_than_bh(seed):
    a, b = paired_data(n_pairs=20, width=500, planted=PLANTED[: 4 * seed + 1], shift=0.6 + 0.2 * seed, seed=seed)
    p = paired_ttest_fdr(a, b).p
    for q in (0.01, 0.05, 0.2):
        bh, by = fdr(p, q, "bh")[0], fdr(p, q, "by")[0]
        assert by.sum() <= bh.sum()
        assert not (by & ~bh).any(), "every BY rejection is also a BH rejection"
    crit = C.compare_criteria(a, b)
    assert crit.counts()["t BY"] <= crit.counts()["t BH"]
    assert crit.counts()["Wilcoxon BY"] <= crit.counts()["Wilcoxon BH"]


# --- permutation p, random sets, folds ----------------------------------------------------------
def test_permutation_p_math():
    null = np.arange(99, dtype=float)            # 0..98
    assert C.permutation_p(1000, null) == pytest.approx(1 / 100)
    assert C.permutation_p(-1, null) == pytest.approx(1.0)
    assert C.permutation_p(49, null) == pytest.approx((1 + 50) / 100)   # ties count as >=
    assert C.permutation_p(49.5, null) == pytest.approx((1 + 49) / 100)
    assert C.permutation_p(5, [1, np.nan, 7]) == pytest.approx(2 / 3)   # NaN draws are ignored
    assert np.isnan(C.permutation_p(np.nan, null))


def test_permutation_p_is_uniform_under_the_null():
    rng = np.random.default_rng(0)
    ps = np.array([C.permutation_p(rng.normal(), rng.normal(size=199)) for _ in range(2000)])
    assert ps.min() >= 1 / 200
    assert abs(np.mean(ps <= 0.05) - 0.05) < 0.015
    assert abs(np.mean(ps <= 0.5) - 0.5) < 0.04


def test_random_neuron_sets():
    sets = C.random_neuron_sets(50, 7, 300, seed=3)
    assert sets.shape == (300, 50) and sets.dtype == bool
    assert (sets.sum(1) == 7).all()
    np.testing.assert_array_equal(sets, C.random_neuron_sets(50, 7, 300, seed=3))
    assert not np.array_equal(sets, C.random_neuron_sets(50, 7, 300, seed=4))
    assert abs(sets.mean() - 7 / 50) < 0.02                     # every neuron equally likely
    excl = np.arange(10)
    others = C.random_neuron_sets(50, 7, 100, seed=0, exclude=excl)
    assert not others[:, :10].any()
    with pytest.raises(ValueError, match="cannot draw 45"):
        C.random_neuron_sets(50, 45, 1, exclude=excl)


@pytest.mark.parametrize("n,k", [(64, 5), (10, 10), (13, 4)])
def test_kfold_disjoint_and_covering(n, k):
    folds = C.kfold_pairs(n, k, seed=1)
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(n))               # covering, no repeats -> disjoint
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert len(tr) + len(te) == n
        assert abs(len(te) - n / k) < 1
    assert [te.tolist() for _, te in folds] == [te.tolist() for _, te in C.kfold_pairs(n, k, seed=1)]
    with pytest.raises(ValueError, match="k must be"):
        C.kfold_pairs(n, n + 1)


def test_jaccard_and_overlap():
    x = np.zeros(100, bool); x[:20] = True
    y = np.zeros(100, bool); y[10:30] = True
    assert C.jaccard(x, y) == pytest.approx(10 / 30)
    assert C.jaccard(np.zeros(5, bool), np.zeros(5, bool)) == 1.0
    o = C.set_overlap(x, y)
    assert (o.n_x, o.n_y, o.n_both) == (20, 20, 10)
    assert o.expected == pytest.approx(4.0)
    assert o.p < 0.01
    assert C.set_overlap(x, x).jaccard == 1.0
    assert C.mean_pairwise_jaccard(np.stack([x, x, x])) == 1.0


# --- held-out selection ------------------------------------------------------------------------
def test_heldout_selection_planted_vs_null():
    a, b = paired_data(n_pairs=60, width=300, planted=PLANTED, shift=2.0, seed=2)
    ho = C.heldout_selection(a, b, k=5)
    assert ho.selected.shape == (5, 300)
    assert (ho.selected[:, :10] == 1).all() and (ho.selected[:, 10:20] == -1).all()
    assert ho.stability > 0.8
    assert ho.replication > 0.7 and ho.same_sign > 0.85    # a few false positives are among the selected
    d_in, d_out = ho.effect_sizes()
    assert d_in > 0.8 and d_out > 0.5
    a0, b0 = paired_data(n_pairs=60, width=300, seed=3)
    ho0 = C.heldout_selection(a0, b0, k=5)
    assert ho0.n_selected.sum() <= 5
    assert "folds" in ho.summary()


def test_heldout_shows_winners_curse():
    """Many weak effects, few pairs: selected neurons look stronger in-sample than on held-out pairs."""
    planted = [(j, 1) for j in range(150)]
    a, b = paired_data(n_pairs=30, width=600, planted=planted, shift=0.45, seed=4)
    d_in, d_out = C.heldout_selection(a, b, k=3).effect_sizes()
    assert d_in > d_out > 0


def test_heldout_effect_sizes_are_corrected_for_fold_size():
    """Every neuron has the same true effect and all are selected (no winner's curse): raw d_z is
    larger on the small held-out folds by small-sample bias alone; corrected, the two agree."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 3000))
    b = a - 0.8 - rng.normal(size=a.shape)           # a - b ~ N(0.8, 1): d_z = 0.8 everywhere
    ho = C.heldout_selection(a, b, k=4)
    assert (ho.selected == 1).mean() > 0.97
    sel = ho.selected != 0
    raw_in, raw_out = np.mean(ho.d_train[sel]), np.mean(ho.d_test[sel])
    d_in, d_out = ho.effect_sizes()
    assert raw_out - raw_in > 0.04                   # 0.8 / J(10) - 0.8 / J(30) = 0.05
    assert abs(d_out - d_in) < 0.02 and abs(d_in - 0.8) < 0.02


# --- lesion test and dose-response on an additive toy with known answers -------------------------
def toy(width=200, n_texts=10, strong=(), weight=1.0, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    w = np.abs(rng.normal(0, noise, size=(width, n_texts)))
    for j in strong:
        w[j] += weight
    clean = rng.uniform(0.5, 3.0, n_texts)
    return C.AdditiveAblator(w, clean)


def test_lesion_test_finds_planted_neurons():
    ab = toy(strong=range(5), weight=0.5)
    r = C.lesion_test_with(ab, np.arange(5), n_draws=500, seed=0)
    assert r.n_neurons == 5 and r.null_ablated.shape == (500, 10)
    assert r.observed == pytest.approx(ab.weights[:5].sum(0).mean())
    assert r.p == pytest.approx(1 / 501)
    assert r.z > 5
    # the same numbers again with the same seed
    assert C.lesion_test_with(ab, np.arange(5), n_draws=500, seed=0).null.tolist() == r.null.tolist()
    s = r.summary()
    assert "p = 0.002" in s and "500 draws" in s and "additive toy" in s


def test_lesion_test_null_set_is_not_significant():
    ps = []
    for seed in range(40):
        ab = toy(seed=seed)
        neurons = np.random.default_rng(100 + seed).choice(ab.width, 8, replace=False)
        ps.append(C.lesion_test_with(ab, neurons, n_draws=200, seed=seed).p)
    ps = np.array(ps)
    assert np.mean(ps < 0.05) <= 0.15
    assert 0.3 < ps.mean() < 0.7


def test_flip_rate_definition():
    w = np.zeros((20, 4))
    w[0] = [2.0, 0.5, 0.0, 5.0]
    ab = C.AdditiveAblator(w, clean=[1.0, 1.0, -1.0, 3.0])
    r = C.lesion_test_with(ab, [0], n_draws=50)
    # text 0: 1 -> -1 flips; text 1: 1 -> 0.5 stays; text 2 was wrong already; text 3: 3 -> -2 flips
    assert (r.n_right, r.n_flipped) == (3, 2)
    assert r.flip_rate == pytest.approx(2 / 3)
    assert np.isnan(r.top1_changed)
    # random sets of one neuron hit neuron 0 with probability 1/20
    assert r.null_flip_rate == pytest.approx(np.mean(r.null_ablated[:, [0, 1, 3]] <= 0) , abs=1e-12)
    assert "flips 2 of 3 (random sets: " in r.summary()
    wrong = C.lesion_test_with(C.AdditiveAblator(w, clean=[-1.0, -2.0, -1.0, -3.0]), [0], n_draws=50)
    assert wrong.n_right == 0 and "prefers 'foil' at every text, so none can flip" in wrong.summary()
    assert "nan" not in wrong.summary()


def test_lesion_test_pool_others_and_errors():
    ab = toy(strong=range(5))
    r = C.lesion_test_with(ab, np.arange(5), n_draws=100, pool="others")
    assert r.pool == "others" and r.width == ab.width
    assert "CAVEAT" not in r.summary()                                      # 5 of 200: a small share
    big = C.lesion_test_with(ab, np.arange(100), n_draws=20, pool="others")  # half the layer
    assert "CAVEAT" in big.summary() and "other 100 neurons" in big.summary()
    assert "CAVEAT" not in C.lesion_test_with(ab, np.arange(100), n_draws=20).summary()   # pool="all"
    empty = C.lesion_test_with(ab, np.zeros(ab.width, bool), label="'her' neurons")   # nothing passed: say so
    assert empty.empty and empty.n_draws == 0 and np.isnan(empty.p) and empty.observed == 0
    assert "no 'her' neurons passed the criterion, so there is nothing to lesion" in empty.summary()
    assert "nothing to lesion" in empty.short() and np.isnan(empty.band()).all()
    with pytest.raises(ValueError, match="pool"):
        C.lesion_test_with(ab, [1], pool="nearby")


def test_dose_response_monotone_on_constructed_case():
    width = 300
    scores = np.linspace(3, -3, width)                      # neuron 0 most target-like
    w = np.zeros((width, 6))
    w[:150] = np.linspace(0.2, 0.01, 150)[:, None]          # positive scores carry positive weight
    ab = C.AdditiveAblator(w, clean=np.full(6, 2.0))
    dr = C.dose_response_with(ab, scores, n_draws=200, seed=0)
    assert dr.ks[0] == 1 and dr.ks[-1] == 150                # log grid up to the positive scores
    assert np.all(np.diff(dr.ks) > 0)
    assert np.all(np.diff(dr.observed) > 0), "more top neurons, bigger drop"
    lo, hi = dr.band()
    assert np.all(dr.observed[1:] > hi[1:])
    assert np.all(dr.p[2:] < 0.01)
    assert dr.summary().count("k=") == len(dr.ks)
    with pytest.raises(ValueError, match="only 150"):
        C.dose_response_with(ab, scores, ks=[200])


def test_log_grid():
    g = C.log_grid(1000, 10)
    assert g[0] == 1 and g[-1] == 1000 and np.all(np.diff(g) > 0)
    assert C.log_grid(3).tolist() == [1, 2, 3]
    assert C.log_grid(0).size == 0


# --- data: the context contrast -----------------------------------------------------------------
def test_context_contrast_file():
    c = load_contrast("him_her_context")
    assert (c.a, c.b) == ("him", "her") and len(c.pairs) >= 54
    assert c.pairs == C.context_pairs("him_her"), "regenerate with helpers.controls.write_context_contrast()"
    for sa, sb in c.pairs:
        ma, mb = mask_word(sa, "him"), mask_word(sb, "her")
        wa, wb = ma.split(), mb.split()
        assert len(wa) == len(wb)
        diff = [i for i, (x, y) in enumerate(zip(wa, wb)) if x != y]
        assert diff == [0], f"only the name may differ once the pronoun is masked: {ma!r} / {mb!r}"
        assert MASK in ma
    names = [p[0].split()[0] for p in c.pairs] + [p[1].split()[0] for p in c.pairs]
    assert len(set(names)) == len(names)


def test_mask_word_errors():
    assert mask_word("I saw him.", "him") == f"I saw {MASK}."
    with pytest.raises(Exception, match="exactly once"):
        mask_word("him and him", "him")


# --- model-backed controls on a tiny random BERT -------------------------------------------------
@pytest.fixture(scope="module")
def tiny_setup(tiny_model, tokenizer):
    ev = cloze_set(tokenizer, "her")
    sel = C.pronoun_selection(tiny_model, tokenizer, layers=[1, 2])
    return tiny_model, tokenizer, ev, sel


def test_cloze_and_masked_sets(tokenizer):
    ev = cloze_set(tokenizer, "her", "object")
    assert (ev.target, ev.foil, len(ev)) == ("her", "him", 12)
    assert all(tokenizer(t)["input_ids"][p] == tokenizer.mask_token_id for t, p in zip(ev.texts, ev.positions))
    ms = masked_set(tokenizer, "him_her_context", "him")
    assert (ms.target, ms.foil, len(ms)) == ("him", "her", 64)
    assert len(ms.subset([0, 3])) == 2


def test_lesion_test_on_tiny_model_matches_a_plain_hook(tiny_setup):
    from helpers.lesion import ablate_neurons
    from helpers.readout import logits_at
    model, tok, ev, _ = tiny_setup
    neurons = [0, 5, 7, 30]
    r = C.lesion_test(model, tok, 1, neurons, ev, n_draws=200, seed=0, stop_at=None)     # fixed n: all 200
    assert r.null_ablated.shape == (200, len(ev)) and r.n_neurons == 4
    assert 1 / 201 <= r.p <= 1 and 0 <= r.top1_changed <= 1
    # the sequential default: the first draws of the same null, batched differently, stopped by the rule
    seq = C.lesion_test(model, tok, 1, neurons, ev, n_draws=200, seed=0)
    assert seq.max_draws == 200 and seq.stop_at == 10 and 10 <= seq.n_draws <= 200
    np.testing.assert_allclose(seq.null_ablated, r.null_ablated[:seq.n_draws], atol=1e-5)
    assert f"after {seq.n_draws}" in seq.summary() and f"after {seq.n_draws}" in seq.short()
    clean = logits_at(model, tok, ev.texts, [[p] for p in ev.positions], ["her", "him"])
    with ablate_neurons(model, 1, neurons, positions=[[p] for p in ev.positions], verbose=False):
        abl = logits_at(model, tok, ev.texts, [[p] for p in ev.positions], ["her", "him"])
    np.testing.assert_allclose(r.clean, clean[:, 0, 0] - clean[:, 0, 1], atol=1e-4)
    np.testing.assert_allclose(r.ablated, abl[:, 0, 0] - abl[:, 0, 1], atol=1e-4)
    assert r.summary().startswith("tiny-bert, layer 1: 4 chosen zero-ablated")
    # plain texts: positions default to the first [MASK]; target and foil must be named
    r2 = C.lesion_test(model, tok, 1, neurons, ev.texts, None, "her", "him", n_draws=20, seed=0)
    np.testing.assert_allclose(r2.ablated, r.ablated, atol=1e-5)
    with pytest.raises(ValueError, match="target and foil"):
        C.lesion_test(model, tok, 1, neurons, ev.texts, n_draws=20)


def test_modes_dose_and_sweep_on_tiny_model(tiny_setup):
    model, tok, ev, sel = tiny_setup
    res = C.compare_modes(model, tok, 2, [1, 2, 3], ev, n_draws=20)
    assert set(res) == {"zero", "mean", "resample"}
    assert all(r.max_draws == 20 and 10 <= r.n_draws <= 20 for r in res.values())    # sequential, h = 10
    assert all(f"after {r.n_draws}" in r.short() for r in res.values())
    assert [C.Ablator(model, tok, L, ev.texts, None, "her", "him").call_sets for L in (0, 1, 2)] == [50, 250, 250]
    fixed = C.compare_modes(model, tok, 2, [1, 2, 3], ev, modes=("mean",), n_draws=20, stop_at=None)
    assert list(fixed) == ["mean"] and fixed["mean"].n_draws == 20
    np.testing.assert_allclose(fixed["mean"].ablated, res["mean"].ablated, atol=1e-6)
    vals = ablation_values(model, tok, "him_her", 2, "resample")
    assert vals.shape == (128, 48)
    dr = C.dose_response(model, tok, sel, 2, ev, ks=[1, 4], n_draws=10)
    assert len(dr.null) == 2 and all(len(n) == 10 for n in dr.null)   # h = 10 = n: the rule uses all 10
    assert dr.summary().count("after 10 draws") == 2
    sweep = C.layer_sweep(model, tok, sel, ev, n_draws=10)
    assert sweep.layers == [1, 2] and set(sweep.results) == {1, 2}
    assert "L1:" in sweep.summary()
    done = [L for L in sweep.layers if sweep.results[L] is not None]
    ph = sweep.p_holm()
    assert sorted(ph) == done
    assert all(ph[L] >= sweep.results[L].p for L in done)
    if done:
        assert f"Holm over the {len(done)} lesioned layers" in sweep.summary()


def test_resample_donors_come_equally_from_both_conditions():
    for n_rows, n in [(128, 8), (128, 7), (10, 10), (4, 8)]:
        for seed in range(5):
            d = C.resample_donors(n_rows, n, seed)
            k = min(n, n_rows)
            assert len(d) == len(set(d)) == k and d.min() >= 0 and d.max() < n_rows
            first = int((d < n_rows // 2).sum())
            assert first == (k + 1) // 2, (n_rows, n, seed, d)
    assert len(C.resample_donors(9, 4, 0)) == 4                       # odd rows: one plain draw
    assert not np.array_equal(C.resample_donors(128, 8, 0), C.resample_donors(128, 8, 1))


def test_selections_and_heldout_on_tiny_model(tiny_setup):
    model, tok, ev, sel = tiny_setup
    msel = C.mask_selection(model, tok, layers=[2])
    assert msel.where == "[MASK]" and msel.acts_a[2].shape == (64, 48)
    # at a [MASK] only the name differs; at the pronoun the token itself does
    assert sel.tests[2].significant.sum() >= msel.tests[2].significant.sum()
    hol = C.heldout_lesion(model, tok, sel, 2, masked_set(tok, "him_her_context", "her"), k=2, n_draws=10)
    assert len(hol.in_sample) == len(hol.held_out) == 2
    r = next(r for r in hol.held_out if r is not None)
    assert r.n_texts == 32 and hol.in_sample[0].n_texts == 32
    with pytest.raises(ValueError, match="one text per pair"):
        C.heldout_lesion(model, tok, sel, 2, ev)


def test_plots_name_the_model(tiny_setup):
    import matplotlib.pyplot as plt
    from helpers.plots import controls as P
    model, tok, ev, sel = tiny_setup
    r = C.lesion_test(model, tok, 2, [1, 2, 3], ev, n_draws=20)
    a, b = sel.acts_a[2], sel.acts_b[2]
    dr = C.dose_response(model, tok, sel, 2, ev, ks=[1, 2], n_draws=10)
    sweep = C.layer_sweep(model, tok, sel, ev, n_draws=5)
    counts_only = C.layer_sweep(model, tok, sel, ev, n_draws=0)
    assert all(v is None for v in counts_only.results.values()) and "not lesioned" in counts_only.summary()
    figs = [P.null_distribution(r), P.modes({"zero": r, "mean": r}), P.dose_response(dr),
            P.layer_sweep(sweep, counts_only), P.layer_sweep(counts_only), P.criteria(C.compare_criteria(a, b), "tiny-bert", 2),
            P.selection_comparison(sel, sel, 2, "her", {"pronoun": r, "mask": r}),
            P.heldout(C.heldout_selection(a, b, k=4), None, "tiny-bert", 2),
            P.lesion_tests({"him_her\n'her' lines": r, "second": r}, p_adjusted=[0.5, 0.75], adjusted_name="Holm")]
    texts = [t.get_text() for t in figs[-1].axes[0].texts]
    assert texts == [f"p={r.p:.3f}\nHolm 0.500", f"p={r.p:.3f}\nHolm 0.750"]
    with pytest.raises(ValueError, match="2 results but 1 adjusted"):
        P.lesion_tests({"a": r, "b": r}, p_adjusted=[0.5])
    from test_plots import legend_colours_missing, tick_label_overlaps
    for f in figs:
        assert any("tiny-bert" in ax.get_title() for ax in f.axes)
        assert tick_label_overlaps(f) == [] and legend_colours_missing(f) == []
        plt.close(f)


def test_ablator_inputs_and_top1_ignore_padding_side_and_train_mode(tiny_setup):
    """positions as mask_positions gives them; a single text; top1 unchanged by left padding and by
    a model left in train mode (dropout off inside, mode restored)."""
    from helpers.stimuli import mask_positions
    model, tok, ev, sel = tiny_setup
    texts = ev.texts[:3]
    ab = C.Ablator(model, tok, 2, texts, mask_positions(tok, texts), ev.target, ev.foil)
    assert ab.positions == C.Ablator(model, tok, 2, texts, None, ev.target, ev.foil).positions
    assert len(C.Ablator(model, tok, 2, texts[0], None, ev.target, ev.foil).texts) == 1
    ref = ab.top1([1, 2, 3])
    was = tok.padding_side
    try:
        tok.padding_side = "left"
        assert np.array_equal(ab.top1([1, 2, 3]), ref)
        assert tok.padding_side == "left"
    finally:
        tok.padding_side = was
    model.train()
    try:
        assert np.array_equal(ab.top1([1, 2, 3]), ref) and model.training
    finally:
        model.eval()
    assert np.isnan(C.permutation_p(1.0, [np.nan, np.nan]))


# --- empty neuron sets: every control and figure says "nothing to lesion" and goes on (#19) -------
@pytest.fixture(scope="module")
def empty_setup(tiny_setup):
    """The tiny model with a selection in which no neuron passes (both halves the same: no t, no FDR pass)."""
    from helpers.selection import Selection
    model, tok, ev, sel = tiny_setup
    acts = sel.acts_a
    tests = {L: paired_ttest_fdr(acts[L], acts[L].copy()) for L in sel.layers}
    empty = Selection(sel.model_label, sel.contrast, sel.where, sel.site, acts, acts, tests)
    assert not any(empty.neurons(L, w).any() for L in empty.layers for w in ("him", "her"))
    return model, tok, ev, sel, empty


def _figure_text(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title]).replace("\n", " ")


def test_empty_sets_give_sentences_not_errors(empty_setup):
    import warnings
    model, tok, ev, sel, empty = empty_setup
    ctx = masked_set(tok, "him_her_context", "her")
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no "mean of empty slice" or division warnings either
        modes = C.compare_modes(model, tok, 2, empty.neurons(2, "her"), ev, n_draws=20, label="'her' neurons")
        assert set(modes) == {"zero", "mean", "resample"} and all(r.empty for r in modes.values())
        assert [r.mode for r in modes.values()] == ["zero", "mean", "resample"]
        assert "nothing to lesion" in modes["mean"].summary() and "nothing to lesion" in modes["resample"].short()
        dr = C.dose_response(model, tok, empty, 2, ev, n_draws=10)
        assert dr.ks.size == 0 and "nothing to lesion" in dr.summary()
        sweep = C.layer_sweep(model, tok, empty, ev, n_draws=10)
        assert all(r is None for r in sweep.results.values()) and sweep.p_holm() == {}
        assert sweep.summary().count("no 'her' neuron passed, nothing to lesion") == len(empty.layers)
        hol = C.heldout_lesion(model, tok, empty, 2, ctx, k=2, n_draws=10)
        assert hol.n_neurons == [0, 0] and "nothing to lesion" in hol.summary()
        ho = C.heldout_selection(empty.acts_a[2], empty.acts_b[2], k=4)
        assert "nothing to replicate" in ho.summary()
        none = np.zeros(48, bool)
        assert "both sets are empty" in C.set_overlap(none, none).summary()
        assert "one set is empty" in C.set_overlap(none, sel.neurons(2, "her")).summary()


def test_top_k_without_fdr_passes_says_so():
    """Neurons with a positive score but none past FDR: the dose-response still runs, and says it is by t alone."""
    ab = toy(width=50)
    dr = C.dose_response_with(ab, np.linspace(1, -1, 50), ks=[1, 5], n_draws=10, n_significant=0)
    assert "none passes FDR: ranked by t alone" in dr.summary()
    assert "ranked by t alone" not in C.dose_response_with(ab, np.linspace(1, -1, 50), ks=[1], n_draws=10,
                                                           n_significant=3).summary()


def test_plots_of_empty_sets_say_so(empty_setup):
    import warnings
    import matplotlib.pyplot as plt
    from helpers.plots import controls as P
    model, tok, ev, sel, empty = empty_setup
    none = C.lesion_test(model, tok, 2, np.zeros(48, bool), ev, n_draws=20, label="'her' neurons")
    some = C.lesion_test(model, tok, 2, [1, 2, 3], ev, n_draws=20)
    ctx = masked_set(tok, "him_her_context", "her")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = {
            "null_distribution": P.null_distribution(none),
            "modes": P.modes({"zero": none, "mean": none}),
            "dose_response": P.dose_response(C.dose_response(model, tok, empty, 2, ev, n_draws=10)),
            "layer_sweep": P.layer_sweep(C.layer_sweep(model, tok, empty, ev, n_draws=10)),
            "selection_comparison": P.selection_comparison(empty, empty, 2, "her", {"pronoun": none, "[MASK]": some}),
            "heldout": P.heldout(C.heldout_selection(empty.acts_a[2], empty.acts_b[2], k=4),
                                 C.heldout_lesion(model, tok, empty, 2, ctx, k=2, n_draws=10), "tiny-bert", 2),
            "lesion_tests": P.lesion_tests({"her": none, "him": some}),
        }
        for name, f in figs.items():
            f.canvas.draw()
    for name, f in figs.items():
        text = _figure_text(f)
        assert "nothing to lesion" in text or "nothing to replicate" in text, (name, text)
        plt.close(f)
    assert "nothing to lesion" in _figure_text(figs["heldout"]) and "nothing to replicate" in _figure_text(
        figs["heldout"])
