"""Trace / TraceDict / mlp_activations on a tiny random BERT."""
import numpy as np
import pytest
import torch

from helpers.capture import mlp_activations
from helpers.hooks import StopForward, Trace, TraceDict, get_module, hooks_attached
from helpers.arch import mlp_module_name


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


# --- re-entry, stop with nested modules, name types ---

def test_building_registers_nothing_and_reentry_raises_without_leaking(tiny_model, tokenizer):
    enc = _batch(tokenizer, ["She saw him."])
    name = mlp_module_name(tiny_model, 1, "pre")
    tr, td = Trace(tiny_model, name), TraceDict(tiny_model, [name, mlp_module_name(tiny_model, 2, "pre")])
    assert hooks_attached(tiny_model) == []                     # nothing until __enter__
    for tracer in (tr, td):
        with pytest.raises(RuntimeError, match=name.replace(".", r"\.")):
            with tracer:
                assert len(hooks_attached(tiny_model)) >= 1
                n_hooks = len(hooks_attached(tiny_model))
                try:
                    with tracer:
                        pass
                finally:
                    assert len(hooks_attached(tiny_model)) == n_hooks  # the inner enter registered nothing
        assert hooks_attached(tiny_model) == []                 # the outer block removed its hooks
    with tr:                                                    # and the tracer is usable again
        tiny_model(**enc)
    assert tr.output is not None and hooks_attached(tiny_model) == []


@pytest.mark.parametrize("names", [
    ["bert.encoder.layer.2.intermediate", "bert.encoder.layer.2.intermediate.dense"],
    ["bert.encoder.layer.1", "bert.encoder.layer.1.output", "bert.encoder.layer.0.intermediate"],
])
def test_tracedict_stop_waits_for_every_traced_module(tiny_model, tokenizer, names):
    enc = _batch(tokenizer, ["She saw him.", "We met her there today."])
    with TraceDict(tiny_model, names) as full:
        tiny_model(**enc)
    calls = []
    h = tiny_model.cls.register_forward_hook(lambda *a: calls.append(1))
    try:
        with TraceDict(tiny_model, names, stop=True) as td:
            tiny_model(**enc)
    finally:
        h.remove()
    assert calls == []                                          # the forward did end early
    for n in names:
        assert td[n].output is not None, n
        got, want = td[n].output, full[n].output
        got, want = (got if torch.is_tensor(got) else got[0]), (want if torch.is_tensor(want) else want[0])
        torch.testing.assert_close(got, want)
    assert hooks_attached(tiny_model) == []


def test_tracedict_accepts_one_name_and_trace_rejects_a_module(tiny_model, tokenizer):
    name = mlp_module_name(tiny_model, 1, "pre")
    with TraceDict(tiny_model, name) as td:
        tiny_model(**_batch(tokenizer, ["She saw him."]))
    assert list(td) == [name] and td[name].output is not None
    for bad in (tiny_model.bert.encoder.layer[1].intermediate, 3):
        with pytest.raises(TypeError, match="named_modules"):
            Trace(tiny_model, bad)
        with pytest.raises(TypeError, match="named_modules"):
            TraceDict(tiny_model, [name, bad])
    assert hooks_attached(tiny_model) == []


# --- mlp_activations: arguments, padding side, train mode, length ---

S3 = ["I saw him.", "We met him at the old station yesterday evening.", "The teacher praised him."]


@pytest.mark.parametrize("bad, culprit", [(True, "True"), ([True, 2], "True"), ([0, 2.9], "2.9"), (1.0, "1.0"),
                                         ("12", "'12'"), ("1", "'1'"), (torch.tensor(1.0), "tensor(1.)"),
                                         (np.array(True), "True"),
                                         ([3], "3"), (-1, "-1")])
def test_mlp_activations_rejects_bad_layers(tiny_model, tokenizer, bad, culprit):
    """No silent conversion (True -> 1, 2.9 -> 2, "12" -> {1, 2}): the error names the value and 0..2."""
    with pytest.raises((TypeError, ValueError), match=r"0\.\.2") as e:
        mlp_activations(tiny_model, tokenizer, S3, "him", layers=bad, verbose=False)
    assert culprit in str(e.value)


def test_mlp_activations_accepts_an_int_and_ranges(tiny_model, tokenizer):
    one = mlp_activations(tiny_model, tokenizer, S3, "him", layers=1, verbose=False)
    many = mlp_activations(tiny_model, tokenizer, S3, "him", layers=range(3), verbose=False)
    npi = mlp_activations(tiny_model, tokenizer, S3, "him", layers=np.array([2, 1]), verbose=False)
    assert set(one) == {1} and set(many) == {0, 1, 2} and set(npi) == {1, 2}
    for zero_d in (np.array(1), torch.tensor(1)):               # one integer, as an array or tensor
        assert set(mlp_activations(tiny_model, tokenizer, S3, "him", layers=zero_d, verbose=False)) == {1}
    np.testing.assert_array_equal(one[1], many[1])


def test_mlp_activations_rejects_empty_input_and_bad_batch_size(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="no texts"):
        mlp_activations(tiny_model, tokenizer, [], "him", [0, 1])
    for bs in (0, -1):
        with pytest.raises(ValueError, match=f"batch_size.*{bs}"):
            mlp_activations(tiny_model, tokenizer, S3, "him", [0], batch_size=bs)


def test_mlp_activations_reads_a_bare_string_as_one_sentence(tiny_model, tokenizer):
    lone = mlp_activations(tiny_model, tokenizer, "She saw him.", "him", [0, 2], verbose=False)
    listed = mlp_activations(tiny_model, tokenizer, ["She saw him."], ["him"], [0, 2], verbose=False)
    assert lone[2].shape == (1, 48)
    for L in (0, 2):
        np.testing.assert_array_equal(lone[L], listed[L])


def test_mlp_activations_ignores_the_tokenizer_padding_side(tiny_model, tokenizer):
    right = mlp_activations(tiny_model, tokenizer, S3, "him", [0, 2], batch_size=8, verbose=False)
    was = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        left = mlp_activations(tiny_model, tokenizer, S3, "him", [0, 2], batch_size=8, verbose=False)
        assert tokenizer.padding_side == "left"                 # the caller's setting is restored
    finally:
        tokenizer.padding_side = was
    for L in (0, 2):
        np.testing.assert_array_equal(left[L], right[L])


def test_mlp_activations_runs_in_eval_mode_and_restores_the_mode(tokenizer):
    from conftest import tiny_bert
    m = tiny_bert()
    ref = mlp_activations(m, tokenizer, S3, "him", [1, 2], verbose=False)
    m.train()
    a = mlp_activations(m, tokenizer, S3, "him", [1, 2], verbose=False)
    b = mlp_activations(m, tokenizer, S3, "him", [1, 2], verbose=False)
    assert m.training and all(mod.training for mod in m.modules())
    for L in (1, 2):
        np.testing.assert_array_equal(a[L], b[L])
        np.testing.assert_array_equal(a[L], ref[L])


def test_mlp_activations_names_a_sentence_longer_than_the_model(tiny_model, tokenizer):
    long = "She saw him " + "very " * 200 + "late."
    n = len(tokenizer(long)["input_ids"])
    with pytest.raises(ValueError, match=rf"sentence 1 .*{n} tokens.*max_position_embeddings.*128"):
        mlp_activations(tiny_model, tokenizer, ["She saw him.", long, "He saw him."], "him", [0, 2])
    assert hooks_attached(tiny_model) == []


# --- hooks that edit and hooks that read, on one module ---

def test_a_trace_sees_the_edit_whichever_with_came_first(tiny_model, tokenizer):
    from helpers.lesion import ablate_neurons
    enc = _batch(tokenizer, ["The dog followed him home."])
    name = mlp_module_name(tiny_model, 1, "post")
    with Trace(tiny_model, name) as before_edit, ablate_neurons(tiny_model, 1, [0, 1, 2], same_positions=1, verbose=False):
        tiny_model(**enc)
    with ablate_neurons(tiny_model, 1, [0, 1, 2], same_positions=1, verbose=False), Trace(tiny_model, name) as after_edit:
        tiny_model(**enc)
    for t in (before_edit, after_edit):
        assert (t.output[0, 1, :3] == 0).all() and (t.output[0, 2, :3] != 0).all()
    # two edits: they run in the order entered, so the inner one has the last word
    with ablate_neurons(tiny_model, 1, [0], same_positions=1, mode="mean", values=np.full(48, 5.0), verbose=False), \
            ablate_neurons(tiny_model, 1, [0], same_positions=1, verbose=False), Trace(tiny_model, name) as t:
        tiny_model(**enc)
    assert t.output[0, 1, 0] == 0
    assert hooks_attached(tiny_model) == []


def test_readers_that_rebatch_refuse_a_per_row_ablation(tiny_model, tokenizer):
    """mlp_activations sorts by length, masked_logits splits by [MASK] count: a per-row edit would land on
    other sentences (it did, silently, for up to one batch of sentences). logits_at keeps the order."""
    from helpers.lesion import ablate_neurons
    from helpers.readout import logits_at, masked_logits
    from helpers.stimuli import target_positions
    pos = target_positions(tokenizer, S3, "him", verbose=False)
    with ablate_neurons(tiny_model, 0, np.arange(48), positions=pos, verbose=False):
        with pytest.raises(ValueError, match="one position entry per batch row.*layer.0.intermediate"):
            mlp_activations(tiny_model, tokenizer, S3, "him", layers=2, verbose=False)
        with pytest.raises(ValueError, match="separate batches"):
            masked_logits(tiny_model, tokenizer, ["I saw [MASK].", "[MASK] saw [MASK] there."], ["him", "her"])
        kept = logits_at(tiny_model, tokenizer, S3, [[p] for p in pos], ["him"])
    one = []
    for s, p in zip(S3, pos):                                       # each sentence alone, its own position
        with ablate_neurons(tiny_model, 0, np.arange(48), positions=[p], verbose=False):
            one.append(logits_at(tiny_model, tokenizer, [s], [[p]], ["him"])[0])
    np.testing.assert_allclose(kept, np.stack(one), atol=1e-5)
    with ablate_neurons(tiny_model, 0, np.arange(48), same_positions=1, verbose=False):   # the same token: any order
        mlp_activations(tiny_model, tokenizer, S3, "him", layers=2, verbose=False)
    assert hooks_attached(tiny_model) == []


def test_eval_mode_restores_each_submodule(tiny_model):
    from helpers.hooks import eval_mode
    tiny_model.eval()
    tiny_model.bert.encoder.layer[0].train()
    try:
        with eval_mode(tiny_model):
            assert not any(m.training for m in tiny_model.modules())
        assert tiny_model.bert.encoder.layer[0].training and tiny_model.bert.encoder.layer[0].output.dropout.training
        assert not tiny_model.training and not tiny_model.bert.encoder.layer[1].training
    finally:
        tiny_model.eval()


def test_a_torch_compiled_model_is_named_with_its_orig_mod(tiny_model, tokenizer):
    """Issue 25 item 4: a torch.compile'd model (an OptimizedModule, its modules named `_orig_mod.<name>`) is an
    error that says so and names model._orig_mod; before, a bare LookupError. The compiled model is built, never
    run, so nothing is compiled here."""
    compiled = torch.compile(tiny_model)
    name = mlp_module_name(tiny_model, 1, "pre")
    for call in (lambda: get_module(compiled, name),
                 lambda: mlp_activations(compiled, tokenizer, ["I saw him."], "him", 1, verbose=False),
                 lambda: Trace(compiled, name)):
        with pytest.raises(LookupError, match=r"torch\.compile'd model .*pass model\._orig_mod"):
            call()
    assert get_module(compiled._orig_mod, name) is get_module(tiny_model, name)
    with pytest.raises(LookupError) as plain:                 # an ordinary model: no word of torch.compile
        get_module(tiny_model, "bert.encoder.layer.1.intermediat")
    assert "_orig_mod" not in str(plain.value) and "compile" not in str(plain.value)
    assert hooks_attached(tiny_model) == []
