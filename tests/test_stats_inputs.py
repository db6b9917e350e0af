"""helpers.stats inputs that used to fail obscurely or depend on the scipy version.

q given as a string or None, FDR method names in any case, a neuron of NaN, a [n, 1] a with a 1-D b,
and Wilcoxon p-values that must not depend on which scipy is installed (the kit declares scipy >= 1.10;
scipy.stats.wilcoxon calls the normal approximation "approx" up to 1.14 and "asymptotic" from 1.15 on,
and before 1.15 it handled ties and zeros differently).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import helpers.stats as hs
from helpers.stats import cohens_dz, fdr, paired_ttest_fdr, paired_wilcoxon


def _pair(n=12, m=5, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, m))
    return a, a + rng.normal(0.8, 1.0, size=(n, m))


# --- q ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", ["0.05", None, [0.05]])
def test_q_that_is_not_a_number_is_an_error_naming_q_and_its_range(q):
    a, b = _pair()
    with pytest.raises(TypeError, match=r"q \(the FDR level\) must be a number with 0 < q < 1.*got "):
        paired_ttest_fdr(a, b, q=q)
    with pytest.raises(TypeError, match=r"q \(the FDR level\) must be a number with 0 < q < 1"):
        fdr([0.01, 0.2], q=q)


@pytest.mark.parametrize("q", [0, 1, 1.5, -0.1, float("nan")])
def test_q_out_of_range_is_an_error_naming_the_range(q):
    with pytest.raises(ValueError, match=r"q \(the FDR level\) must be a number with 0 < q < 1"):
        paired_ttest_fdr(*_pair(), q=q)
    with pytest.raises(ValueError, match=r"0 < q < 1"):
        fdr([0.01, 0.2], q=q)


def test_q_as_a_numpy_number_is_accepted_and_stored_as_a_float():
    a, b = _pair()
    r = paired_ttest_fdr(a, b, q=np.float32(0.25))
    assert type(r.q) is float and r.q == pytest.approx(0.25)
    np.testing.assert_array_equal(r.significant, paired_ttest_fdr(a, b, q=0.25).significant)


# --- method names -------------------------------------------------------------------------------

@pytest.mark.parametrize("method, key", [("BH", "bh"), ("Bh", "bh"), ("bh", "bh"), ("BY", "by"), ("By", "by")])
def test_method_names_are_case_insensitive(method, key):
    a, b = _pair(n=30, m=40)
    r = paired_ttest_fdr(a, b, method=method)
    ref = paired_ttest_fdr(a, b, method=key)
    assert r.method == key
    np.testing.assert_array_equal(r.significant, ref.significant)
    np.testing.assert_array_equal(r.p_adj, ref.p_adj)
    assert f"({key.upper()}, q=0.05)" in r.summary()
    p = np.linspace(0.001, 0.5, 20)
    for got, want in zip(fdr(p, method=method), fdr(p, method=key)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", ["holm", "B-H", None, ""])
def test_an_unknown_method_lists_the_valid_ones(method):
    with pytest.raises(ValueError, match=r"method must be one of 'bh' \(Benjamini-Hochberg\), "
                                         r"'by' \(Benjamini-Yekutieli\), in any case; got "):
        paired_ttest_fdr(*_pair(), method=method)
    with pytest.raises(ValueError, match=r"'bh'.*'by'"):
        fdr([0.01], method=method)


# --- NaN / inf: the neuron and the pairs ----------------------------------------------------------

def test_a_neuron_of_nan_is_named_with_its_pairs():
    a, b = _pair(n=40, m=50)
    a[:, 17] = np.nan                                  # a dead (all-NaN) neuron
    a[3, 20] = np.inf
    b[5, 33] = np.nan
    with pytest.raises(ValueError, match=r"^neuron 17 \(and 2 more: 20, 33\) has NaN or inf values: "
                                         r"pairs \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\] contain NaN or inf "
                                         r"\(all 40 pairs; in a and b\)$"):
        paired_ttest_fdr(a, b)


def test_a_few_nan_values_name_the_neuron_and_the_pairs():
    a, b = _pair(n=10, m=4)
    b[[2, 7], 3] = np.nan
    for fn in (paired_ttest_fdr, cohens_dz, paired_wilcoxon):
        with pytest.raises(ValueError, match=r"^neuron 3 has NaN or inf values: pairs \[2, 7\] contain NaN or "
                                             r"inf \(2 of 10 pairs; in b\)$"):
            fn(a, b)


# --- shapes -------------------------------------------------------------------------------------

def test_a_column_and_a_1d_array_are_one_neuron_either_way_round():
    a, b = _pair(n=8, m=1)
    ref = paired_ttest_fdr(a, b)
    for x, y in ((a, b[:, 0]), (a[:, 0], b), (a[:, 0], b[:, 0])):
        r = paired_ttest_fdr(x, y)
        np.testing.assert_array_equal(r.t, ref.t)
        np.testing.assert_array_equal(r.p, ref.p)
        np.testing.assert_array_equal(cohens_dz(x, y), cohens_dz(a, b))
        np.testing.assert_array_equal(paired_wilcoxon(x, y), paired_wilcoxon(a, b))
    with pytest.raises(ValueError, match="same neurons"):
        paired_ttest_fdr(np.zeros((8, 2)), np.ones(8))


# --- Wilcoxon: the same p on every scipy version ------------------------------------------------

def _cases():
    """(d, p) with p = scipy.stats.wilcoxon(d).pvalue of scipy 1.17 (default arguments), one per branch."""
    d1 = np.arange(1, 21.)
    d1[[1, 4, 6, 11, 15]] *= -1                                          # n=20, no ties or zeros: exact
    d2 = np.array([1., 1, 2, 0, -1, 3, 2, -2, 4, 1])                    # n=10, ties and a zero: sign flips
    d3 = (np.arange(30) * 7 % 11) - 3.0                                 # n=30, ties and 3 zeros: normal
    d4 = (np.arange(60) * 13 % 17) - 5.5                                # n=60, ties: normal
    d5 = np.arange(1, 61.) * np.where(np.arange(60) % 3 == 0, -1, 1)    # n=60, no ties: normal
    return [(d1, 0.017181396484375), (d2, 0.12109375), (d3, 0.0029150983697375458),
            (d4, 0.0018650570763974036), (d5, 0.016733071607703435)]


def test_wilcoxon_p_is_scipy_1_17s_on_this_scipy():
    for d, want in _cases():
        got = paired_wilcoxon(d, np.zeros_like(d))
        assert got[0] == pytest.approx(want, rel=1e-12, abs=0), (len(d), scipy.__version__)
        both = paired_wilcoxon(np.stack([d, -d], 1), np.zeros((len(d), 2)))   # mirrored: the same p
        assert both == pytest.approx([want, want], rel=1e-12, abs=0)


def _wilcoxon_of(version: tuple[int, int]):
    """scipy.stats.wilcoxon as scipy `version` takes its method: "approx" up to 1.14, "asymptotic" after."""
    real = scipy.stats.wilcoxon
    known, other = ("approx", "asymptotic") if version < (1, 15) else ("asymptotic", "approx")

    def wilcoxon(*args, method="auto", **kw):
        if method == other:
            raise ValueError(f"`method` must be one of {{'auto', '{known}', 'exact'}}")
        return real(*args, method="asymptotic" if method == known else method, **kw)
    return wilcoxon


@pytest.mark.parametrize("version", [(1, 10), (1, 12), (1, 13), (1, 14), (1, 15), (1, 17)])
def test_wilcoxon_does_not_depend_on_scipys_method_names(monkeypatch, version):
    monkeypatch.setattr(scipy.stats, "wilcoxon", _wilcoxon_of(version))
    monkeypatch.setattr(hs, "_SCIPY", version, raising=False)        # what an older kit read at import
    for d, want in _cases():
        assert paired_wilcoxon(d, np.zeros_like(d))[0] == pytest.approx(want, rel=1e-12, abs=0)
