"""Runs where the students are (issue #19): GPT-2 without a pad token, devices, transformers 4.x attention,
a model on the meta device, and resample draws (contrast files that fool the tokenizer: test_stimuli.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from helpers import fast
from helpers.arch import model_device
from helpers.controls import lesion_test
from helpers.fast import ablation_logit_diffs, clean_logit_diffs, slow_reason, supports_fast
from helpers.lesion import ablate_neurons
from helpers.loading import pick_device
from helpers.readout import logits_at, masked_logits, word_ids
from test_architectures import build

GPT_TEXTS = ["The dog followed him all the way", "Nobody told her about"]


@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


def _straight(model, tok, texts, positions, layer, neurons, words):
    """logit(words[0]) - logit(words[1]) at positions[i] of texts[i], one plain hooked forward per text."""
    ids = word_ids(tok, words)
    out = []
    for t, p in zip(texts, positions):
        with torch.no_grad(), ablate_neurons(model, layer, neurons, positions=[[p]], verbose=False):
            lg = model(**tok(t, return_tensors="pt")).logits[0, p]
        out.append(float(lg[ids[0]] - lg[ids[1]]))
    return np.array(out)


def test_gpt2_without_a_pad_token_reads_logits_and_runs_the_nulls(gpt2):
    """GPT-2's tokenizer has no pad token: logits_at, masked_logits, the fast and slow nulls and lesion_test all
    run (one text per pass) and equal a straightforward hooked forward."""
    model, tok = gpt2
    assert tok.pad_token is None
    pos = [len(tok(t)["input_ids"]) - 1 for t in GPT_TEXTS]
    lg = logits_at(model, tok, GPT_TEXTS, pos, ["him", "her"])
    np.testing.assert_allclose(lg[:, 0, 0] - lg[:, 0, 1], _straight(model, tok, GPT_TEXTS, pos, 1, [], ["him", "her"]),
                               atol=1e-5)
    np.testing.assert_allclose(clean_logit_diffs(model, tok, GPT_TEXTS, pos, "him", "her"), lg[:, 0, 0] - lg[:, 0, 1],
                               atol=1e-5)
    sets = [[1, 2, 3], [4, 5]]
    want = np.stack([_straight(model, tok, GPT_TEXTS, pos, 1, s, ["him", "her"]) for s in sets])
    with pytest.warns(UserWarning, match="fast null does not apply to this model because it is a gpt2 model"):
        fast._SAID.clear()
        got = ablation_logit_diffs(model, tok, GPT_TEXTS, pos, 1, sets, "him", "her")
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(ablation_logit_diffs(model, tok, GPT_TEXTS, pos, 1, sets, "him", "her", fast=False),
                               want, atol=1e-5)
    r = lesion_test(model, tok, 1, [1, 2, 3], GPT_TEXTS, pos, "him", "her", n_draws=5)
    np.testing.assert_allclose(r.ablated, want[0], atol=1e-5)
    assert r.n_draws == 5 and np.isfinite(r.top1_changed)


def test_gpt2_masked_logits_predicts_the_next_token_even_at_the_start(gpt2):
    model, tok = gpt2
    out = masked_logits(model, tok, ["[MASK] left.", "Nobody told [MASK] about"], ["him", "her"])
    assert out.shape == (2, 1, 2) and np.isfinite(out).all()
    bos = model(**tok(tok.bos_token, return_tensors="pt")).logits[0, -1, word_ids(tok, ["him", "her"])]
    np.testing.assert_allclose(out[0, 0], bos.detach().numpy(), atol=1e-5)   # read after the start-of-text token


def test_the_slow_path_is_said_once_per_kind_of_model(tiny_model, tokenizer, gpt2):
    fast._SAID.clear()
    texts = ["She gave [MASK] a book."]
    pos = [[3]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # the BERT fast path: no warning at all
        ablation_logit_diffs(tiny_model, tokenizer, texts, pos, 1, [[1, 2]], "her", "him")
    model, tok = gpt2
    p = [len(tok(GPT_TEXTS[0])["input_ids"]) - 1]
    with pytest.warns(UserWarning, match="one full forward pass per neuron set"):
        ablation_logit_diffs(model, tok, GPT_TEXTS[:1], p, 1, [[1]], "him", "her")
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # said once: the second call is quiet
        ablation_logit_diffs(model, tok, GPT_TEXTS[:1], p, 1, [[1]], "him", "her")


def test_transformers_4_attention_without_a_scaling_attribute_keeps_the_fast_path(tiny_model, tokenizer):
    """transformers 4.x's BERT self-attention has no `scaling` (5.x has one): the fast path computes
    1/sqrt(head size) itself, instead of quietly falling back to one forward per set (20x slower). The
    fast path on transformers 4.x as a whole runs in `make colab-stack` and `make lowest-stack`."""
    from types import SimpleNamespace
    assert fast._scaling(SimpleNamespace(attention_head_size=16)) == 0.25
    sa = tiny_model.bert.encoder.layer[0].attention.self
    assert fast._scaling(sa) == pytest.approx(sa.attention_head_size ** -0.5)
    missing = object()                     # transformers 4.x: the attribute is not there to begin with
    saved = [layer.attention.self.__dict__.pop("scaling", missing) for layer in tiny_model.bert.encoder.layer]
    try:
        assert not any(hasattr(layer.attention.self, "scaling") for layer in tiny_model.bert.encoder.layer)
        assert supports_fast(tiny_model) and slow_reason(tiny_model) is None
    finally:
        for layer, v in zip(tiny_model.bert.encoder.layer, saved):
            if v is not missing:
                layer.attention.self.scaling = v


def test_device_auto_takes_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda" and pick_device(None).type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto").type == "mps" and pick_device("AUTO").type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    assert pick_device("cpu") == torch.device("cpu") and pick_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        pick_device("mps")
    with pytest.raises(ValueError, match="device must be 'auto', 'cuda', 'mps', 'cpu'"):
        pick_device("gpu please")


def test_load_mlm_puts_the_model_on_the_device_and_says_so(monkeypatch, capsys):
    """The model line names the device; the stand-in goes where pick_device says (the CPU here)."""
    from helpers.loading import load_mlm
    model, _ = load_mlm("stand-in", device="cpu")
    assert model_device(model).type == "cpu"
    assert "Model: stand-in (offline stand-in, 6 layers x 1536 MLP neurons; not bert-base-uncased), on cpu" \
        in capsys.readouterr().out


def test_helpers_follow_the_models_device(tiny_model, tokenizer):
    """Every reader asks the model for its device (arch.model_device); here: a model whose parameters report
    another device gets its inputs sent there (the tensors' .to() is what fails, with the device named)."""
    class Elsewhere(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        def parameters(self, recurse=True):
            yield torch.empty(0, device="meta")

    with pytest.raises(ValueError, match="'meta' device: its weights were never loaded"):
        masked_logits(Elsewhere(tiny_model), tokenizer, ["I saw [MASK]."], ["him"])


def test_a_model_on_the_meta_device_gets_the_kits_error(tokenizer):
    from transformers import BertConfig, BertForMaskedLM
    with torch.device("meta"):
        model = BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, intermediate_size=48))
    with pytest.raises(ValueError, match="on the 'meta' device: its weights were never loaded"):
        masked_logits(model, tokenizer, ["I saw [MASK]."], ["him"])
    with pytest.raises(ValueError, match="meta"):
        from helpers.capture import mlp_activations
        mlp_activations(model, tokenizer, ["I saw him."], "him", 0, verbose=False)


# --- resample draws ------------------------------------------------------------------------------

def test_resample_draws_depend_on_the_text_and_position_not_on_the_grouping(tiny_model, tokenizer):
    """A resample draw is a function of (seed, the row's tokens, the position): the same text gets the same
    donor alone or in a batch, and in two calls inside one block (it used to differ by 3e-3)."""
    from helpers.hooks import Trace
    from helpers.arch import mlp_module_name
    values = np.random.default_rng(0).normal(size=(50, 48)).astype(np.float32)
    texts = ["She gave him a book.", "We thanked her twice for it.", "He saw them."]
    name = mlp_module_name(tiny_model, 1, "pre")

    def edited(batch, rows=None):
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        with ablate_neurons(tiny_model, 1, [3, 9], positions=rows or [[1, 2]] * len(batch), mode="resample",
                            values=values, seed=5, verbose=False), Trace(tiny_model, name) as t:
            tiny_model(**enc)
            first = t.output.clone()
            tiny_model(**enc)
        assert torch.equal(first, t.output)                      # two calls in one block: the same draws
        return t.output[:, 1:3, [3, 9]]

    together = edited(texts)
    for i, text in enumerate(texts):
        assert torch.equal(edited([text])[0], together[i])       # alone or batched: the same draws
    assert not torch.equal(together[0], together[1])             # different texts: different draws
    other_seed_enc = tokenizer(texts[:1], return_tensors="pt")
    with ablate_neurons(tiny_model, 1, [3, 9], positions=[[1, 2]], mode="resample", values=values, seed=6,
                        verbose=False), Trace(tiny_model, name) as t:
        tiny_model(**other_seed_enc)
    assert not torch.equal(t.output[0, 1:3, [3, 9]], together[0])   # the seed matters
    for row in together.reshape(-1, 2):
        assert any(np.allclose(row.numpy(), values[k, [3, 9]]) for k in range(50))   # a real donor's values
