"""helpers.fast gives the same numbers as the straightforward path; capture with early stop = without.

All on tiny random models (no download); no timing assertions (bench/bench.py measures speed).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import fast
from helpers.fast import ablation_logit_diffs, clean_logit_diffs, supports_fast
from helpers.capture import mlp_activations
from helpers.hooks import TraceDict, hooks_attached
from helpers.arch import mlp_module_name


def tiny_bert(seed: int = 0, layers: int = 3, width: int = 48, init: float = 0.02):
    """tests/conftest.py's tiny_bert recipe (that module is not importable under every rootdir).

    init: std of the random weights; 0.1 makes lesions move the logits visibly.
    """
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=width, max_position_embeddings=128, initializer_range=init)
    return BertForMaskedLM(cfg).eval()

TEXTS = ["She gave [MASK] a book.",
         "The man saw [MASK] yesterday at the old market near the river.",
         "We thanked [MASK].",
         "They told [MASK] everything about the long trip to the coast last summer.",
         "I met [MASK] there."]
TOL = dict(rtol=1e-4, atol=1e-4)


def _positions(tok, texts):
    return [tok(t)["input_ids"].index(tok.mask_token_id) for t in texts]


def _sets(width, n=4, seed=0):
    rng = np.random.default_rng(seed)
    sets = [rng.choice(width, width // 2, replace=False) for _ in range(n - 1)]
    return sets + [np.zeros(width, dtype=bool)]          # the empty set: no change


@pytest.fixture(scope="module")
def deep():
    return tiny_bert(seed=1, layers=5, init=0.1)


@pytest.mark.parametrize("layer", [0, 2, 3, 4])
@pytest.mark.parametrize("mode,site", [("zero", "post"), ("mean", "post"), ("mean", "pre")])
def test_fast_equals_straightforward(deep, tokenizer, layer, mode, site):
    width = 48
    pos = _positions(tokenizer, TEXTS)
    values = np.random.default_rng(layer).normal(0, 2, width).astype(np.float32) if mode == "mean" else None
    sets = _sets(width)
    kw = dict(mode=mode, values=values, site=site)
    got = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, layer, sets, "him", "her", **kw)
    ref = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, layer, sets, "him", "her", fast=False, **kw)
    assert got.shape == (len(sets), len(TEXTS))
    np.testing.assert_allclose(got, ref, **TOL)
    clean = clean_logit_diffs(deep, tokenizer, TEXTS, pos, "him", "her")
    np.testing.assert_allclose(got[-1], clean, **TOL)             # empty set = no lesion
    assert np.abs(ref[:-1] - clean).max() > 100 * TOL["atol"]    # the lesions did move the logits
    assert hooks_attached(deep) == []


def test_three_layer_fixture_model(tiny_model, tokenizer):
    """The shared tiny_bert fixture (3 layers): every layer, including the one before the last."""
    pos = _positions(tokenizer, TEXTS)
    sets = _sets(48, n=3, seed=5)
    for layer in range(3):
        got = ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, layer, sets, "him", "her")
        ref = ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, layer, sets, "him", "her", fast=False)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_chunks_groups_and_set_formats(deep, tokenizer, monkeypatch):
    """Small text groups and tiny chunks give the same answer; sets may be masks, indices, 2-D arrays."""
    pos = _positions(tokenizer, TEXTS)
    idx = _sets(48, n=5, seed=3)[:-1]
    masks = np.zeros((len(idx), 48), dtype=bool)
    for k, s in enumerate(idx):
        masks[k, s] = True
    ref = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, masks, "her", "him", fast=False)
    np.testing.assert_allclose(ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, idx, "her", "him"), ref, **TOL)
    np.testing.assert_allclose(ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, np.stack(idx), "her", "him"),
                               ref, **TOL)
    monkeypatch.setattr(fast, "TEXTS_PER_GROUP", 2)
    got = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, list(masks), "her", "him", batch_size=3)
    np.testing.assert_allclose(got, ref, **TOL)


EQUAL = ["[MASK] gave her a red book today.",      # one token length, the read token in four places
         "She gave [MASK] a red book today.",
         "She gave her a red [MASK] today.",
         "She gave her a red book [MASK]."]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_block_above_rebuilt_per_token(deep, tokenizer, monkeypatch, layer):
    """Block L+1 rebuilt from per-text vectors (_next_layer_all): several texts per group, the read
    token at different places, tiles of one text; equal to the straightforward path, and really used."""
    assert len({len(tokenizer(t)["input_ids"]) for t in EQUAL}) == 1
    calls = []
    real = fast._next_layer_all
    monkeypatch.setattr(fast, "_next_layer_all", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    monkeypatch.setattr(fast, "TILE_BYTES", 1)                     # one text per tile
    pos = _positions(tokenizer, EQUAL)
    values = np.random.default_rng(9).normal(0, 2, 48).astype(np.float32)
    sets = _sets(48, n=5, seed=11)
    for kw in (dict(), dict(mode="mean", values=values, site="pre")):
        got = ablation_logit_diffs(deep, tokenizer, EQUAL, pos, layer, sets, "him", "her", batch_size=8, **kw)
        ref = ablation_logit_diffs(deep, tokenizer, EQUAL, pos, layer, sets, "him", "her", fast=False, **kw)
        np.testing.assert_allclose(got, ref, **TOL)
        assert np.abs(ref[:-1] - ref[-1]).max() > 100 * TOL["atol"]
    assert calls and max(calls) == 2                               # 8 sequences per chunk = 2 sets x 4 texts


def test_tiles_and_f_blocks(deep, tokenizer, monkeypatch):
    """Tiles of one set x one text inside blocks of 2 sets for F_h (the last block short): same numbers."""
    assert fast._tile_sizes(5, 4, 9, 4, 48, 4, cpu=False) == (4, 5, 5)           # a GPU: one tile per chunk
    H, W = deep.config.num_attention_heads, deep.config.intermediate_size
    tile = 5 * H * W * 4 // 8                                       # 4 tiles hold 2.5 sets' F_h
    monkeypatch.setattr(fast, "TILE_BYTES", tile)
    monkeypatch.setattr(fast, "F_TILES", 4)
    n = len(tokenizer(EQUAL[0])["input_ids"])
    assert fast._tile_sizes(5, 4, n, H, W, 4, cpu=True) == (1, 1, 2)
    sizes = []
    real = fast._tile
    monkeypatch.setattr(fast, "_tile", lambda *a: sizes.append(tuple(a[2].shape[:2])) or real(*a))
    pos = _positions(tokenizer, EQUAL)
    sets = _sets(48, n=5, seed=5)
    got = ablation_logit_diffs(deep, tokenizer, EQUAL, pos, 1, sets, "her", "him", batch_size=20)
    np.testing.assert_allclose(got, ablation_logit_diffs(deep, tokenizer, EQUAL, pos, 1, sets, "her", "him",
                                                         fast=False), **TOL)
    assert sizes == [(1, 1)] * 20                                   # 5 sets x 4 texts, one per tile


def test_basis_budget_splits_groups(deep, tokenizer, monkeypatch):
    """Where the per-token vectors of a group would pass BASIS_BUDGET, the group is split; same numbers."""
    pos = _positions(tokenizer, EQUAL)
    sets = _sets(48, n=3, seed=4)
    ref = ablation_logit_diffs(deep, tokenizer, EQUAL, pos, 1, sets, "her", "him")
    assert fast._texts_per_group(deep, 1, 10) == fast.TEXTS_PER_GROUP
    monkeypatch.setattr(fast, "BASIS_BUDGET", 1)
    assert fast._texts_per_group(deep, 1, 10) == 1
    assert fast._texts_per_group(deep, 3, 10) == fast.TEXTS_PER_GROUP   # block 4 is the last: nothing kept
    np.testing.assert_allclose(ablation_logit_diffs(deep, tokenizer, EQUAL, pos, 1, sets, "her", "him"), ref,
                               rtol=1e-5, atol=1e-6)


def test_errors_name_the_culprit(tiny_model, tokenizer):
    pos = _positions(tokenizer, TEXTS)
    with pytest.raises(IndexError, match="text 2"):
        ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos[:2] + [40] + pos[3:], 0, [[1]], "him", "her")
    with pytest.raises(IndexError, match="neuron set 1"):
        ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, 0, [[1], [99]], "him", "her")
    with pytest.raises(ValueError, match="values"):
        ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, 0, [[1]], "him", "her", mode="mean")
    with pytest.raises(ValueError, match="one set"):
        ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, 0, [1, 2, 3], "him", "her")
    with pytest.raises(ValueError, match="0..2"):
        ablation_logit_diffs(tiny_model, tokenizer, TEXTS, pos, 3, [[1]], "him", "her")


def test_roberta_and_electra_heads(tokenizer):
    """The other BertLayer families: RoBERTa (its own LM head) and ELECTRA (embedding projection)."""
    from transformers import ElectraConfig, ElectraForMaskedLM, RobertaConfig, RobertaForMaskedLM
    torch.manual_seed(0)
    common = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                  intermediate_size=48, max_position_embeddings=130, pad_token_id=0)
    models = [RobertaForMaskedLM(RobertaConfig(**common)).eval(),
              ElectraForMaskedLM(ElectraConfig(embedding_size=16, **common)).eval()]
    pos = _positions(tokenizer, TEXTS)
    sets = _sets(48, n=3, seed=7)
    for m in models:
        assert supports_fast(m)
        for layer in (0, 1):                                # 0: block 1 rebuilt per token; 1: the last block
            got = ablation_logit_diffs(m, tokenizer, TEXTS, pos, layer, sets, "him", "her")
            ref = ablation_logit_diffs(m, tokenizer, TEXTS, pos, layer, sets, "him", "her", fast=False)
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_train_mode_is_restored(tokenizer):
    m = tiny_bert(seed=2).train()
    pos = _positions(tokenizer, TEXTS[:2])
    got = ablation_logit_diffs(m, tokenizer, TEXTS[:2], pos, 0, [[0, 1]], "him", "her")
    assert m.training
    m.eval()
    np.testing.assert_allclose(got, ablation_logit_diffs(m, tokenizer, TEXTS[:2], pos, 0, [[0, 1]], "him", "her",
                                                         fast=False), rtol=1e-4, atol=1e-5)


# --- capture: all layers in one pass, stopped after the deepest one -------------------------------------

def test_capture_with_stop_equals_full_forward(deep, tokenizer):
    sents = [t.replace("[MASK]", "him") for t in TEXTS]
    layers = [0, 2, 3]
    calls = []
    handle = deep.bert.encoder.layer[4].register_forward_hook(lambda *a: calls.append(1))
    try:
        got = mlp_activations(deep, tokenizer, sents, "him", layers, site="pre", batch_size=2)
    finally:
        handle.remove()
    assert calls == []                                   # layer 4 never ran: the pass stopped after layer 3
    pos = [tokenizer(s)["input_ids"].index(tokenizer.convert_tokens_to_ids("him")) for s in sents]
    names = [mlp_module_name(deep, L, "pre") for L in layers]
    with torch.no_grad(), TraceDict(deep, names, stop=False) as td:
        for i, s in enumerate(sents):                    # one unpadded full forward per sentence
            deep(**tokenizer(s, return_tensors="pt"))
            for L, name in zip(layers, names):
                np.testing.assert_allclose(got[L][i], td[name].output[0, pos[i]].numpy(), rtol=1e-4, atol=1e-5)
    assert hooks_attached(deep) == []


@pytest.mark.parametrize("outer", [2, 4])        # the block above the lesion, and the last block
def test_hooks_already_on_the_model_are_respected(deep, tokenizer, outer):
    """An outer ablation (another with-block) must act on every set: the fast path rebuilds blocks
    without calling their hooks, so with hooks attached the call takes the full-forward path."""
    from helpers.lesion import ablate_neurons
    pos = _positions(tokenizer, TEXTS)
    sets = _sets(48)
    plain = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, sets, "him", "her")
    with ablate_neurons(deep, outer, np.arange(0, 48, 2), verbose=False):
        with pytest.warns(UserWarning, match="hooks are attached"):
            got = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, sets, "him", "her")
        ref = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, sets, "him", "her", fast=False)
    np.testing.assert_allclose(got, ref, **TOL)
    assert np.abs(got - plain).max() > 100 * TOL["atol"]            # the outer hook did act
    assert hooks_attached(deep) == []


def test_read_only_hooks_keep_the_fast_path(deep, tokenizer, monkeypatch):
    """A hook marked observe_only (the bench's timers) does not switch the fast path off."""
    import warnings
    calls = []
    monkeypatch.setattr(fast, "_slow", lambda *a, **k: calls.append(1) or np.zeros((1, 1)))

    def seen(module, args, output):
        calls.append("seen")
    seen.observe_only = True
    pos = _positions(tokenizer, TEXTS)
    h = deep.bert.encoder.layer[2].output.dense.register_forward_hook(seen)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = ablation_logit_diffs(deep, tokenizer, TEXTS, pos, 1, _sets(48), "him", "her")
    finally:
        h.remove()
    assert 1 not in calls and "seen" in calls and out.shape == (4, len(TEXTS))
