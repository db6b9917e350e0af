"""ablate_neurons and the logit readers on a tiny random BERT."""
import numpy as np
import pytest
import torch

from helpers.hooks import Trace, hooks_attached
from helpers.lesion import ablate_neurons
from helpers.readout import logits_at, masked_logits
from helpers.arch import mlp_module_name


def test_zero_ablation_sets_exactly_the_chosen_values(tiny_model, tokenizer):
    enc = tokenizer(["He thanked her.", "She thanked him warmly."], return_tensors="pt", padding=True)
    name = mlp_module_name(tiny_model, 1, "post")
    with ablate_neurons(tiny_model, 1, [3, 5], positions=[2, []]):
        with Trace(tiny_model, name) as t:
            tiny_model(**enc)
    with Trace(tiny_model, name) as clean:
        tiny_model(**enc)
    out, ref = t.output, clean.output
    assert (out[0, 2, [3, 5]] == 0).all()
    changed = (out != ref)
    assert changed.sum() == 2                       # only row 0, token 2, neurons 3 and 5
    assert hooks_attached(tiny_model) == []


def test_pre_and_post_zeroing_agree(tiny_model, tokenizer):
    enc = tokenizer(["They invited her to dinner."], return_tensors="pt")
    mask = np.zeros(48, bool)
    mask[::3] = True
    with ablate_neurons(tiny_model, 2, mask, site="pre"):
        a = tiny_model(**enc).logits
    with ablate_neurons(tiny_model, 2, mask, site="post"):
        b = tiny_model(**enc).logits
    torch.testing.assert_close(a, b)


def test_mean_ablation_uses_the_given_values(tiny_model, tokenizer):
    enc = tokenizer(["I called him."], return_tensors="pt")
    values = np.arange(48, dtype=np.float32)
    with ablate_neurons(tiny_model, 0, [4, 7], mode="mean", values=values, site="post"):
        with Trace(tiny_model, mlp_module_name(tiny_model, 0, "post")) as t:
            tiny_model(**enc)
    assert (t.output[0, :, 4] == 4).all() and (t.output[0, :, 7] == 7).all()
    with pytest.raises(ValueError, match="needs `values`"):
        with ablate_neurons(tiny_model, 0, [1], mode="mean"):
            pass


def test_empty_neuron_set_is_a_reported_no_op(tiny_model, tokenizer, capsys):
    enc = tokenizer(["Nothing happens."], return_tensors="pt")
    ref = tiny_model(**enc).logits
    with ablate_neurons(tiny_model, 1, np.zeros(48, bool)):
        out = tiny_model(**enc).logits
    assert torch.equal(out, ref) and "empty" in capsys.readouterr().out


def test_masked_logits_reads_every_mask(tiny_model, tokenizer):
    texts = ["I saw [MASK] at the [MASK].", "We met [MASK]."]
    L = masked_logits(tiny_model, tokenizer, texts, ["him", "her"])
    assert L.shape == (2, 2, 2) and np.isnan(L[1, 1]).all() and np.isfinite(L[0]).all()
    enc = tokenizer(texts[:1], return_tensors="pt")
    full = tiny_model(**enc).logits[0]
    pos = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().ravel()
    ids = tokenizer.convert_tokens_to_ids(["him", "her"])
    np.testing.assert_allclose(L[0], full[pos][:, ids].detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits_at(tiny_model, tokenizer, texts[:1], [pos.tolist()], ["him", "her"])[0], L[0],
                               rtol=1e-5, atol=1e-5)
