"""Trace / TraceDict / mlp_activations on a tiny random BERT."""
import numpy as np
import pytest
import torch

from helpers.hooks import StopForward, Trace, TraceDict, get_module, hooks_attached, mlp_activations
from helpers.models import mlp_module_name


def _batch(tokenizer, texts):
    return tokenizer(texts, return_tensors="pt", padding=True)


def test_trace_captures_module_output_and_removes_hook(tiny_model, tokenizer):
    name = mlp_module_name(tiny_model, 1, "pre")
    enc = _batch(tokenizer, ["I saw her today.", "A longer sentence than the first one."])
    with Trace(tiny_model, name) as t:
        tiny_model(**enc)
    assert t.output.shape == (2, enc["input_ids"].shape[1], 48)
    assert hooks_attached(tiny_model) == []


def test_pre_site_equals_dense_of_attention_output(tiny_model, tokenizer):
    enc = _batch(tokenizer, ["The dog followed him home."])
    layer = tiny_model.bert.encoder.layer[2]
    with Trace(tiny_model, "bert.encoder.layer.2.attention") as att, \
            Trace(tiny_model, mlp_module_name(tiny_model, 2, "pre")) as pre, \
            Trace(tiny_model, mlp_module_name(tiny_model, 2, "post")) as post:
        tiny_model(**enc)
    attn_out = att.output if torch.is_tensor(att.output) else att.output[0]
    torch.testing.assert_close(pre.output, layer.intermediate.dense(attn_out))
    torch.testing.assert_close(post.output, torch.nn.functional.gelu(pre.output))


def test_stop_ends_forward_early_and_is_swallowed(tiny_model, tokenizer):
    calls = []
    h = tiny_model.bert.encoder.layer[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        with Trace(tiny_model, mlp_module_name(tiny_model, 0, "pre"), stop=True) as t:
            tiny_model(**_batch(tokenizer, ["Stop here."]))
    finally:
        h.remove()
    assert t.output is not None and calls == []
    assert hooks_attached(tiny_model) == []


def test_other_exceptions_propagate_and_hooks_are_removed(tiny_model, tokenizer):
    def boom(out, module):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with TraceDict(tiny_model, [mlp_module_name(tiny_model, i, "pre") for i in range(3)], edit_output=boom):
            tiny_model(**_batch(tokenizer, ["x"]))
    assert hooks_attached(tiny_model) == []


def test_edit_output_changes_the_forward(tiny_model, tokenizer):
    enc = _batch(tokenizer, ["She drove him home."])
    clean = tiny_model(**enc).logits
    with Trace(tiny_model, mlp_module_name(tiny_model, 1, "post"), edit_output=lambda o, m: o * 0):
        edited = tiny_model(**enc).logits
    assert not torch.allclose(clean, edited)
    assert torch.equal(tiny_model(**enc).logits, clean)


def test_get_module_error_names_close_choices(tiny_model):
    with pytest.raises(LookupError, match="bert.encoder.layer.1.intermediate"):
        get_module(tiny_model, "bert.encoder.layer.1.intermediat")


def test_mlp_activations_matches_a_plain_trace(tiny_model, tokenizer):
    sents = ["I saw him at the station yesterday.", "We met her.", "The teacher praised him in class today."]
    words = ["him", "her", "him"]
    got = mlp_activations(tiny_model, tokenizer, sents, words, layers=[0, 2], site="pre", batch_size=2)
    assert set(got) == {0, 2} and got[2].shape == (3, 48)
    for i, (s, w) in enumerate(zip(sents, words)):
        enc = tokenizer([s], return_tensors="pt")
        pos = tokenizer.convert_ids_to_tokens(enc["input_ids"][0]).index(w)
        with Trace(tiny_model, mlp_module_name(tiny_model, 2, "pre")) as t:
            tiny_model(**enc)
        np.testing.assert_allclose(got[2][i], t.output[0, pos].numpy(), rtol=1e-5, atol=1e-5)
    assert hooks_attached(tiny_model) == []


def test_tracedict_detach_false_keeps_outputs_in_the_graph(tiny_model, tokenizer):
    """detach=False (used by the stand-in's training recipe): a loss on a traced output reaches the weights."""
    names = [mlp_module_name(tiny_model, L, "pre") for L in (0, 1)]
    enc = tokenizer(["She thanked him."], return_tensors="pt")
    with TraceDict(tiny_model, names, detach=False) as td:
        tiny_model(**enc)
    assert all(td[n].output.requires_grad for n in names)
    td[names[1]].output.pow(2).sum().backward()
    w = tiny_model.bert.encoder.layer[1].intermediate.dense.weight
    assert w.grad is not None and w.grad.abs().sum() > 0
    tiny_model.zero_grad(set_to_none=True)
    with TraceDict(tiny_model, names) as td:                 # the default stays detached
        tiny_model(**enc)
    assert not any(td[n].output.requires_grad for n in names)
    assert hooks_attached(tiny_model) == []
