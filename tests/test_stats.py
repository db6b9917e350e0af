"""paired_ttest_fdr against scipy/statsmodels and planted effects."""
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import fdrcorrection

from helpers.stats import cohens_dz, fdr, holm, paired_ttest_fdr, paired_wilcoxon


def planted(n=40, m=300, k=30, effect=1.5, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, m))
    b = a + rng.normal(scale=1.0, size=(n, m))
    b[:, :k] -= effect          # first k neurons: a > b
    b[:, k:2 * k] += effect     # next k: a < b
    return a, b


def test_matches_scipy_and_statsmodels():
    a, b = planted()
    r = paired_ttest_fdr(a, b, q=0.05)
    ref = stats.ttest_rel(a, b)
    np.testing.assert_allclose(r.t, ref.statistic)
    np.testing.assert_allclose(r.p, ref.pvalue)
    rej, padj = fdrcorrection(ref.pvalue, alpha=0.05)
    np.testing.assert_array_equal(r.significant, rej)
    np.testing.assert_allclose(r.p_adj, padj)


def test_planted_effect_is_found_with_the_right_sign():
    a, b = planted()
    r = paired_ttest_fdr(a, b)
    assert r.positive[:30].mean() > 0.9 and r.negative[30:60].mean() > 0.9
    assert r.significant[60:].mean() < 0.05
    assert not (r.positive & r.negative).any()


def test_mask_is_boolean_and_not_a_pvalue_comparison():
    a, b = planted()
    r = paired_ttest_fdr(a, b)
    assert r.significant.dtype == bool
    # a looser q can only add discoveries
    assert (paired_ttest_fdr(a, b, q=0.2).significant >= r.significant).all()


def test_by_never_rejects_more_than_bh():
    for seed in range(5):
        a, b = planted(seed=seed, effect=0.6)
        bh = paired_ttest_fdr(a, b, method="bh").significant
        by = paired_ttest_fdr(a, b, method="by").significant
        assert by.sum() <= bh.sum() and not (by & ~bh).any()


def test_null_data_gives_uniform_p_and_few_hits():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 2000)), rng.normal(size=(50, 2000))
    r = paired_ttest_fdr(a, b)
    assert stats.kstest(r.p, "uniform").pvalue > 0.01
    assert r.significant.sum() <= 5


def test_zero_variance_neurons_are_left_out_and_counted():
    a, b = planted(m=50)
    a[:, 7] = b[:, 7] = 3.0          # identical: no variance in the difference
    a[:, 8] = b[:, 8] + 1.0          # constant shift: zero variance too
    r = paired_ttest_fdr(a, b)
    assert r.n_excluded == 2 and np.isnan(r.t[[7, 8]]).all() and not r.significant[[7, 8]].any()
    assert "2 neurons with zero variance" in r.summary()
    ok, padj = fdr(np.array([0.001, np.nan, 0.5]))
    assert ok.tolist() == [True, False, False] and np.isnan(padj[1])


def test_unequal_pairs_are_an_error_that_says_so():
    with pytest.raises(ValueError, match="54 vs 53 pairs"):
        paired_ttest_fdr(np.zeros((54, 10)), np.zeros((53, 10)))


def test_effect_sizes_and_wilcoxon():
    a, b = planted()
    d = cohens_dz(a, b)
    assert (d[:30] > 0.8).all() and (d[30:60] < -0.8).all()
    p = paired_wilcoxon(a, b)
    assert (p[:30] < 1e-3).all() and np.median(p[60:]) > 0.2


def test_holm_matches_statsmodels_and_a_hand_example():
    from statsmodels.stats.multitest import multipletests
    # sorted 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> raised to 0.06 (step-down monotone)
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    rng = np.random.default_rng(0)
    for size in range(1, 13):                         # statsmodels' multipletests costs ~0.1 s a call
        p = rng.random(size) ** 3
        assert np.allclose(holm(p), multipletests(p, method="holm")[1])
    out = holm([0.5, np.nan, 0.01])                   # NaN stays NaN and is not counted
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.5, 0.02])
    assert holm([0.9, 0.8]).max() <= 1.0 and holm([]).shape == (0,)


def test_torch_tensors_with_grad_are_accepted():
    import torch
    a, b = planted(n=20, m=30)
    ta = torch.tensor(a, requires_grad=True)
    res = paired_ttest_fdr(ta, torch.tensor(b))
    np.testing.assert_allclose(res.t, paired_ttest_fdr(a, b).t)
    np.testing.assert_allclose(cohens_dz(ta, b), cohens_dz(a, b))


def test_constant_up_to_rounding_is_judged_at_the_inputs_precision():
    """A difference constant but for the rounding of the stored values is untestable: float64 data
    (1e-12 of scale) and float32 activations (8 float32 eps of scale) alike; t, d and cohens_dz agree."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    b = x + rng.normal(size=(30, 3))
    a64 = x.copy()
    a64[:, 0] = b[:, 0] - 2.0                                  # constant up to float64 rounding
    r = paired_ttest_fdr(a64, b)
    assert np.isnan(r.t[0]) and np.isnan(r.d[0]) and np.isnan(cohens_dz(a64, b)[0])
    assert np.isfinite(cohens_dz(a64, b)[1:]).all() and r.n_excluded == 1
    a32, b32 = x.astype(np.float32), (x + 0.25).astype(np.float32)   # float32 rounding only (sd ~ 3e-8)
    b32[:, 2] += rng.normal(scale=1e-3, size=30).astype(np.float32)  # a real, small variation
    r32 = paired_ttest_fdr(a32, b32)
    assert np.isnan(r32.t[:2]).all() and r32.n_excluded == 2 and np.isfinite(r32.t[2])
    assert np.array_equal(np.isnan(cohens_dz(a32, b32)), np.isnan(r32.d))
    import torch                                                # a float32 tensor: the same rule
    assert np.isnan(paired_ttest_fdr(torch.from_numpy(a32), torch.from_numpy(b32)).t[:2]).all()


def test_untestable_neurons_get_no_effect_size_in_the_controls():
    from helpers.controls import compare_criteria, heldout_selection
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 2))
    b = a + rng.normal(size=(30, 2))
    b[:, 0] = a[:, 0] - 2.0
    crit = compare_criteria(a, b)
    counts = crit.counts()
    assert counts["|d| > 0.8"] == counts["t BH"] == 0
    a = rng.normal(size=(40, 3))
    b = a + rng.normal(size=(40, 3))
    b[:, 1] -= 3.0                                              # a strong effect in neuron 1 ...
    ho = heldout_selection(a, b, k=4)
    _, te = ho.folds[0]
    b[te, 1] = a[te, 1] + 3.0                                   # ... constant on fold 0's held-out pairs
    ho = heldout_selection(a, b, k=4)
    assert np.isnan(ho.d_test[0, 1]) and np.isfinite(ho.effect_sizes()).all()
    assert abs(ho.effect_sizes()[1]) < 10


def test_heldout_folds_too_small_are_an_error_that_says_what_k_to_use():
    from helpers.controls import heldout_selection
    a = np.random.default_rng(2).normal(size=(10, 4))
    with pytest.raises(ValueError, match=r"k=5 folds of 10 pairs leave 2 pair\(s\).*use k <= 3"):
        heldout_selection(a, a + 1.0 + a ** 2, k=5)
    assert heldout_selection(a, a + 1.0 + a ** 2, k=3).k == 3


def test_holm_rejects_what_it_cannot_mean():
    with pytest.raises(ValueError, match="1-D"):
        holm(0.03)
    with pytest.raises(ValueError, match="1-D"):
        holm([[0.01, 0.2]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])
