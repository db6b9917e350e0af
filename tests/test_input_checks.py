"""Inputs that used to be read silently and wrongly: each is now right or an error naming the culprit.

lesion: padding side and train mode, 0/1 integer masks, [UNK] words, empty/str texts, positions.
stats: p outside [0, 1], the zero-variance cut-off under rescaling, Wilcoxon p per column.
The contrast-file loader's checks are in test_stimuli.py.
"""
from __future__ import annotations

import re

import numpy as np
import scipy
import pytest
import torch
from scipy import stats as st

from helpers.hooks import Trace, hooks_attached
from helpers.lesion import ablate_neurons, neuron_index
from helpers.readout import logits_at, masked_logits, word_ids
from helpers.arch import mlp_module_name
from helpers.stats import fdr, paired_ttest_fdr, paired_wilcoxon

SCIPY_115 = tuple(int(x) for x in scipy.__version__.split(".")[:2]) >= (1, 15)
from helpers.stimuli import StimulusError

TEXTS = ["She gave [MASK] a book.", "We thanked [MASK].", "They told [MASK] everything about the long trip."]


def _n_tokens(tok, text):
    return len(tok(text)["input_ids"])


def _mask_pos(tok, text):
    return tok(text.replace("[MASK]", tok.mask_token))["input_ids"].index(tok.mask_token_id)


# --- 1. padding side and train mode -------------------------------------------------------------

def test_left_padding_gives_the_same_logits_and_is_restored(tiny_model, tokenizer):
    words = ["him", "her"]
    per_text = [[_mask_pos(tokenizer, t), 1] for t in TEXTS]
    was = tokenizer.padding_side
    try:
        tokenizer.padding_side = "right"
        ml_r = masked_logits(tiny_model, tokenizer, TEXTS, words)
        la_r = logits_at(tiny_model, tokenizer, TEXTS, per_text, words)
        tokenizer.padding_side = "left"
        ml_l = masked_logits(tiny_model, tokenizer, TEXTS, words)
        la_l = logits_at(tiny_model, tokenizer, TEXTS, per_text, words)
        assert tokenizer.padding_side == "left"
    finally:
        tokenizer.padding_side = was
    np.testing.assert_allclose(ml_l, ml_r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(la_l, la_r, rtol=1e-5, atol=1e-5)
    alone = masked_logits(tiny_model, tokenizer, TEXTS[1:2], words)      # the short text, no padding at all
    np.testing.assert_allclose(ml_l[1], alone[0], rtol=1e-5, atol=1e-5)


def test_a_model_left_in_train_mode_gives_deterministic_logits(tokenizer):
    from conftest import tiny_bert
    model = tiny_bert(seed=3)                  # dropout 0.1: train mode would change every call
    ref = masked_logits(model, tokenizer, TEXTS, ["him"])
    model.train()
    one = masked_logits(model, tokenizer, TEXTS, ["him"])
    two = masked_logits(model, tokenizer, TEXTS, ["him"])
    assert model.training                      # the mode is restored
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=1e-6, atol=1e-6)



def test_the_lecture_parts_say_that_the_model_was_left_in_train_mode(tokenizer):
    """part1, part2 and part3 on a model left in train mode each warn (TrainModeWarning, at the caller's line)
    that dropout is on and to call model.eval(); their numbers are those of eval mode, the mode is left as it
    was, and a model in eval mode gets no warning."""
    import warnings

    from conftest import tiny_bert
    from helpers.lecture import TrainModeWarning, part1, part2, part3
    model = tiny_bert(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainModeWarning)
        ref1 = part1(model, tokenizer, "him_her", 1)
        ref2 = part2(model, tokenizer, "him_her")
        ref3 = part3(model, tokenizer, ref1, ref2)
    model.train()
    with pytest.warns(TrainModeWarning, match=r"tiny-bert is in train mode \(dropout on\).*call model\.eval\(\)") as w:
        p1 = part1(model, tokenizer, "him_her", 1)
        p2 = part2(model, tokenizer, "him_her")
        p3 = part3(model, tokenizer, p1, p2)
    told = [x for x in w if issubclass(x.category, TrainModeWarning)]
    assert len(told) == 3 and {x.filename for x in told} == {__file__}
    assert [p1.summary(), p2.summary(), p3.summary()] == [ref1.summary(), ref2.summary(), ref3.summary()]
    assert model.training

# --- 2. neuron indices --------------------------------------------------------------------------

def test_integer_0_1_mask_is_an_error_not_the_indices_0_and_1(tiny_model):
    mask = np.zeros(48, bool)
    mask[[10, 20, 30]] = True
    with pytest.raises(ValueError, match=r"looks like a 0/1 mask.*bool array.*np\.flatnonzero"):
        neuron_index(mask.astype(int), 48, layer=1)
    with pytest.raises(ValueError, match="in layer 1 is an integer array of 48 zeros and ones"):
        with ablate_neurons(tiny_model, 1, mask.astype(int)):
            pass
    assert hooks_attached(tiny_model) == []
    assert neuron_index(mask, 48).tolist() == [10, 20, 30]                       # still: bool masks
    assert neuron_index([0, 1], 48).tolist() == [0, 1]                           # still: short index lists
    assert neuron_index(np.array([1, 0, 1]), 48).tolist() == [0, 1]
    assert neuron_index({30, 10, 20}, 48).tolist() == [10, 20, 30]               # a set: indices, sorted
    assert neuron_index(torch.tensor([5, 2]), 48).tolist() == [2, 5]
    with pytest.raises(IndexError, match="neuron index 48 is out of range"):
        neuron_index({1, 48}, 48)


# --- 3. words the tokenizer does not know -------------------------------------------------------

def test_unknown_word_is_named_not_read_as_unk(tiny_model, tokenizer):
    assert tokenizer.tokenize("☃") == [tokenizer.unk_token]
    with pytest.raises(ValueError, match="the word '☃' is not in the vocabulary"):
        word_ids(tokenizer, ["him", "☃"])
    with pytest.raises(ValueError, match="the word '☃' is not in the vocabulary"):
        masked_logits(tiny_model, tokenizer, ["She saw [MASK]."], ["☃"])
    with pytest.raises(StimulusError, match=r"the word 'Ximena' is 3 tokens"):    # split words: as before
        word_ids(tokenizer, ["Ximena"])
    assert word_ids(tokenizer, ["him", "her"]) == tokenizer.convert_tokens_to_ids(["him", "her"])


# --- 4. texts and positions of the readers ------------------------------------------------------

def test_no_texts_and_a_single_string(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="no texts"):
        masked_logits(tiny_model, tokenizer, [], ["him"])
    with pytest.raises(ValueError, match="no texts"):
        logits_at(tiny_model, tokenizer, [], [1], ["him"])
    one = masked_logits(tiny_model, tokenizer, "She saw [MASK].", ["him", "her"])
    assert one.shape == (1, 1, 2)
    np.testing.assert_array_equal(one, masked_logits(tiny_model, tokenizer, ["She saw [MASK]."], ["him", "her"]))
    at = logits_at(tiny_model, tokenizer, "She saw [MASK].", [3], ["him"])
    np.testing.assert_array_equal(at[0, 0], one[0, 0, :1])
    np.testing.assert_array_equal(logits_at(tiny_model, tokenizer, "She saw [MASK].", [3], "him"), at)  # a str word
    with pytest.raises(TypeError, match=r"positions=3 is one int.*same_positions=3"):   # one meaning: per text
        logits_at(tiny_model, tokenizer, "She saw [MASK].", 3, "him")
    np.testing.assert_array_equal(logits_at(tiny_model, tokenizer, "She saw [MASK].", words="him", same_positions=3),
                                  at)


def test_positions_hold_one_entry_per_text_and_same_positions_is_its_own_keyword(tiny_model, tokenizer):
    """README "Conventions": `positions` has one entry per text everywhere; the same tokens of every text are
    `same_positions`. A flat list as long as the texts is one token per text, never "these tokens of each"."""
    pos = [_mask_pos(tokenizer, t) for t in TEXTS]
    per_text = logits_at(tiny_model, tokenizer, TEXTS, [[p] for p in pos], ["him"])
    assert per_text.shape == (3, 1, 1)
    np.testing.assert_array_equal(logits_at(tiny_model, tokenizer, TEXTS, pos, ["him"]), per_text)   # ints: one each
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(per_text[i], logits_at(tiny_model, tokenizer, [t], [pos[i]], ["him"])[0],
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(per_text, masked_logits(tiny_model, tokenizer, TEXTS, ["him"]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="positions has 2 entries but there are 3 texts.*same_positions"):
        logits_at(tiny_model, tokenizer, TEXTS, [1, 2], ["him"])
    shared = logits_at(tiny_model, tokenizer, TEXTS, words=["him"], same_positions=[1, 2])   # tokens 1, 2 of each
    assert shared.shape == (3, 2, 1)
    for p in (np.array([[1, 2]] * 3), torch.tensor([[1, 2]] * 3), [[1, 2]] * 3):
        np.testing.assert_array_equal(logits_at(tiny_model, tokenizer, TEXTS, p, ["him"]), shared)
    for p in (np.array([1, 2]), torch.tensor([1, 2])):
        np.testing.assert_array_equal(logits_at(tiny_model, tokenizer, TEXTS, words=["him"], same_positions=p), shared)
    with pytest.raises(TypeError, match="either positions .* or same_positions"):
        logits_at(tiny_model, tokenizer, TEXTS, [[1]] * 3, ["him"], same_positions=[1])


def test_positions_outside_a_text_name_the_text_and_the_range(tiny_model, tokenizer):
    n1 = _n_tokens(tokenizer, TEXTS[1])
    with pytest.raises(ValueError, match=re.escape(f"text 0 {TEXTS[0]!r}: position -1 is outside its")):
        logits_at(tiny_model, tokenizer, TEXTS, [-1, 1, 1], ["him"])
    # inside the padded batch but past the short text 1: its padding, not a token of it
    with pytest.raises(ValueError, match=re.escape(f"text 1 {TEXTS[1]!r}: position {n1} is outside its {n1} "
                                                   f"tokens (valid 0..{n1 - 1}")):
        logits_at(tiny_model, tokenizer, TEXTS, words=["him"], same_positions=n1)
    with pytest.raises(IndexError, match=r"text 2 .*position 40 .*valid 0\.\."):  # also an IndexError, as before
        logits_at(tiny_model, tokenizer, TEXTS, [[1], [1], [40]], ["him"])
    with pytest.raises(ValueError, match="positions for text 1 has 2 entries but text 0 has 1"):
        logits_at(tiny_model, tokenizer, TEXTS, [[1], [1, 2], [3]], ["him"])


# --- 5. ablate_neurons positions ------------------------------------------------------------------

@pytest.mark.parametrize("positions, same, row", [(None, -1, 0), (None, 100, 0), ([1, 100], None, 1),
                                                  ([[2], [-2]], None, 1), (None, torch.tensor(-1), 0),
                                                  (np.array([3, 9]), None, 1)])
def test_ablation_positions_outside_the_sequence_name_the_row(tiny_model, tokenizer, positions, same, row):
    enc = tokenizer(["She saw him.", "He told him a story."], return_tensors="pt", padding=True)
    seq = enc["input_ids"].shape[1]
    assert seq == 8
    with pytest.raises(ValueError, match=rf"row {row}: position -?\d+ is outside its {seq} tokens"):
        with ablate_neurons(tiny_model, 1, [1, 2], positions=positions, same_positions=same):
            tiny_model(**enc)
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("positions, same_as", [(torch.tensor([1, 2]), [1, 2]), (np.array([1, 2]), [1, 2]),
                                                ([torch.tensor(1), np.array([2, 3])], [1, [2, 3]]),
                                                ([[], np.int64(3)], [[], 3])])
def test_ablation_positions_as_arrays_and_tensors(tiny_model, tokenizer, positions, same_as):
    enc = tokenizer(["She saw him.", "He told him a story."], return_tensors="pt", padding=True)
    name = mlp_module_name(tiny_model, 1, "post")

    def run(**where):
        with ablate_neurons(tiny_model, 1, [4, 7], **where):
            with Trace(tiny_model, name) as t:
                tiny_model(**enc)
        return t.output

    got, ref = run(positions=positions), run(positions=same_as)
    assert torch.equal(got, ref) and hooks_attached(tiny_model) == []
    for r, p in enumerate(same_as):
        assert (got[r, p][..., [4, 7]] == 0).all()
    for one in (2, torch.tensor(2), np.int64(2)):                    # one int is never "one entry per row"
        with pytest.raises(TypeError, match="one entry per batch row.*same_positions=2"):
            run(positions=one)
        every = run(same_positions=one)
        assert (every[:, 2, [4, 7]] == 0).all() and torch.equal(every, run(positions=[2, 2]))


# --- 6-7, 9. statistics ---------------------------------------------------------------------------

def test_fdr_rejects_p_outside_0_1_and_names_it():
    with pytest.raises(ValueError, match=r"p\[0\] = -0\.2 .*2 of 3 values are outside \[0, 1\]"):
        fdr([-0.2, 1.5, 0.01])
    with pytest.raises(ValueError, match=r"p\[1\] = 1\.5"):
        fdr([0.2, 1.5, 0.01])
    with pytest.raises(ValueError, match=r"p\[0, 1\] = inf"):
        fdr(np.array([[0.1, np.inf]]))
    rej, adj = fdr([0.0, 1.0, np.nan, 0.01])                                     # bounds and NaN: fine
    assert rej.tolist() == [True, False, False, True] and np.isnan(adj[2]) and (adj[[0, 1, 3]] >= 0).all()


def test_zero_variance_cut_off_does_not_depend_on_the_data_scale():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 6))
    b = a - rng.normal(0.5, 1.0, size=(30, 6))
    b[:, 1] = a[:, 1] - 1.0            # constant shift: zero variance
    a[:, 2] = b[:, 2] = 0.0            # dead neuron
    b[:, 3] = a[:, 3]                  # no difference
    ref = paired_ttest_fdr(a, b)
    assert ref.n_excluded == 3 and np.isnan(ref.t[[1, 2, 3]]).all() and np.isfinite(ref.t[[0, 4, 5]]).all()
    for s in (1e-13, 1e-6, 1e6):
        r = paired_ttest_fdr(a * s, b * s)
        assert r.n_excluded == ref.n_excluded, s
        np.testing.assert_allclose(r.t, ref.t, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(r.p, ref.p, rtol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(r.significant, ref.significant)
        np.testing.assert_allclose(r.d, ref.d, rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("n", [10, 20, 60])
def test_wilcoxon_p_of_a_neuron_does_not_depend_on_its_neighbours(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 3))
    b = a + rng.normal(0.6, 1.0, size=(n, 3))
    b[0, 1] = a[0, 1]                                  # neuron 1: one zero difference
    b[:, 2] = a[:, 2] - np.round(rng.normal(0.5, 1.0, n), 0) - 0.5   # neuron 2: tied differences
    both = paired_wilcoxon(a, b)
    for j in range(3):
        alone = paired_wilcoxon(a[:, [j]], b[:, [j]])[0]
        assert both[j] == pytest.approx(alone, rel=1e-12, abs=0), j
        if SCIPY_115:   # scipy's own "auto" rule is the kit's from 1.15 on (tests/test_stats_inputs.py pins the
            # values for every scipy version)
            assert alone == pytest.approx(st.wilcoxon(a[:, j] - b[:, j]).pvalue, rel=1e-12, abs=0), j


def test_wilcoxon_small_n_with_ties_is_the_exact_sign_flip_p():
    d = np.array([[1., 1], [2, 0], [3, 0], [1, 0], [2, 0], [2, 1]])
    p = paired_wilcoxon(d, np.zeros_like(d))
    if SCIPY_115:
        assert p[0] == pytest.approx(st.wilcoxon(d[:, 0]).pvalue, rel=1e-12)
        assert p[1] == pytest.approx(st.wilcoxon(d[:, 1]).pvalue, rel=1e-12)
    assert p[0] == pytest.approx(2 / 64, rel=1e-12)     # all 6 positive: 1 of the 64 sign patterns, two-sided
    assert np.isnan(paired_wilcoxon(np.zeros((5, 1)), np.zeros((5, 1)))[0])


# --- fast path and lesion arguments (review of the hook API) ---

def test_fast_positions_are_integers_and_long_or_non_text_input_is_named(tiny_model, tokenizer):
    from helpers.fast import ablation_logit_diffs, clean_logit_diffs
    texts = ["She gave [MASK] a book.", "We thanked [MASK].", "I saw [MASK]."]
    pos = [_mask_pos(tokenizer, t) for t in texts]
    ref = ablation_logit_diffs(tiny_model, tokenizer, texts, pos, 1, [[1, 2]], "her", "him")
    for bad in ([1.7, 1, 1], [True, 1, 1], [[1.0], [1], [1]]):
        with pytest.raises(TypeError, match="integer"):
            ablation_logit_diffs(tiny_model, tokenizer, texts, bad, 1, [[1, 2]], "her", "him")
    for same in (torch.tensor(pos), np.array(pos), [[p] for p in pos]):
        np.testing.assert_array_equal(ablation_logit_diffs(tiny_model, tokenizer, texts, same, 1, [[1, 2]],
                                                           "her", "him"), ref)
    with pytest.raises(TypeError, match="one entry per text"):                # one int: not one entry per text
        ablation_logit_diffs(tiny_model, tokenizer, texts, torch.tensor(1), 1, [[1, 2]], "her", "him")
    long = "x " * 200 + "[MASK]"
    for fn in (lambda: clean_logit_diffs(tiny_model, tokenizer, [texts[0], long], [pos[0], 1], "her", "him"),
               lambda: logits_at(tiny_model, tokenizer, [texts[0], long], [[1], [1]], ["her"])):
        with pytest.raises(ValueError, match=r"text 1 'x x .*has 20\d tokens, more than the model takes"):
            fn()
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        ablation_logit_diffs(tiny_model, tokenizer, [texts[0], None], [1, 1], 1, [[1]], "her", "him")
    with pytest.raises(ValueError, match="batch_size must be a positive integer.*2.5"):
        ablation_logit_diffs(tiny_model, tokenizer, texts, pos, 1, [[1, 2]], "her", "him", batch_size=2.5)
    grad_values = torch.ones(48, requires_grad=True)
    out = ablation_logit_diffs(tiny_model, tokenizer, texts, pos, 1, [[1, 2]], "her", "him", mode="mean",
                               values=grad_values)
    assert np.isfinite(out).all()


def test_ablate_neurons_checks_everything_even_for_an_empty_set(tiny_model, tokenizer, capsys):
    with pytest.raises(ValueError, match="site must be"):
        with ablate_neurons(tiny_model, 0, [], site="bogus"):
            pass
    with pytest.raises(ValueError, match="needs `values`"):
        with ablate_neurons(tiny_model, 0, [], mode="mean"):
            pass
    with pytest.raises(ValueError, match="no samples"):
        with ablate_neurons(tiny_model, 0, [1], mode="resample", values=np.zeros((0, 48))):
            pass
    with pytest.raises(IndexError, match="neuron index 18446744073709551615 is out of range"):
        neuron_index(np.array([2 ** 64 - 1], np.uint64), 48)
    with ablate_neurons(tiny_model, 0, [1], mode="mean", values=torch.ones(48, requires_grad=True), verbose=False):
        logits_at(tiny_model, tokenizer, ["I saw him."], [1], ["him"])
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("mode, values, where", [
    ("mean", np.r_[np.ones(10), np.nan, np.ones(37)], r"1 NaN or infinite entry \(the first at neuron 10: nan\)"),
    ("mean", torch.full((48,), float("inf")), r"48 NaN or infinite entries \(the first at neuron 0: inf\)"),
    ("resample", np.vstack([np.ones(48), np.r_[np.ones(5), -np.inf, np.ones(42)]]),
     r"1 NaN or infinite entry \(the first at neuron 5 of sample 1: -inf\)"),
])
def test_mean_and_resample_values_that_are_not_finite_are_refused(tiny_model, tokenizer, mode, values, where):
    """NaN or inf replacement values would make every logit NaN, silently: ablate_neurons and the fast path
    (mean; both through lesion.check_values) refuse them before any forward pass, naming the entry."""
    from helpers.fast import ablation_logit_diffs
    texts = ["She gave [MASK] a book.", "We thanked [MASK]."]
    with pytest.raises(ValueError, match=rf"mode='{mode}': values holds {where}"):
        with ablate_neurons(tiny_model, 1, [10, 5, 0], mode=mode, values=values, verbose=False):
            pass
    if mode == "mean":                          # the fast path has zero and mean only
        with pytest.raises(ValueError, match=rf"mode='mean': values holds {where}"):
            ablation_logit_diffs(tiny_model, tokenizer, texts, [_mask_pos(tokenizer, t) for t in texts], 1,
                                 [[10, 5, 0]], "her", "him", mode=mode, values=values)
    assert hooks_attached(tiny_model) == []
