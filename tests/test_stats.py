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
    for _ in range(100):
        p = rng.random(rng.integers(1, 12)) ** 3
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
