"""Bad input gets one clear message naming the culprit; nothing leaks; outputs are reproducible.

One section per row of issue #7. Models are tiny random BERTs (conftest.tiny_bert), so
nothing is downloaded; the loader's rows (unknown model offline, checksum) are in
test_models.py, the contrast files' and target words' in test_stimuli.py, and the property-based
checks in test_properties.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.capture import mlp_activations
from helpers.hooks import StopForward, Trace, TraceDict, get_module, hooks_attached
from helpers.lecture import part1
from helpers.lesion import ablate_neurons, neuron_index
from helpers.readout import masked_logits
from helpers.arch import check_layer, mlp_module_name
from helpers.stats import paired_ttest_fdr
from helpers.stimuli import StimulusError

ROOT = Path(__file__).resolve().parents[1]


# --- unequal counts and NaN pairs -------------------------------------------------------------

def test_unequal_pair_counts_say_which_rows(tiny_model):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"10 vs 8 pairs, so rows 8\.\.9 of a have no partner"):
        paired_ttest_fdr(rng.normal(size=(10, 5)), rng.normal(size=(8, 5)))
    with pytest.raises(ValueError, match=r"rows 3\.\.3 of b have no partner"):
        paired_ttest_fdr(rng.normal(size=(3, 5)), rng.normal(size=(4, 5)))
    with pytest.raises(ValueError, match="same neurons"):
        paired_ttest_fdr(rng.normal(size=(4, 5)), rng.normal(size=(4, 6)))


def test_pairs_with_nan_are_named():
    a, b = np.ones((5, 3)), np.zeros((5, 3))
    a[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"pairs \[3\] contain NaN"):
        paired_ttest_fdr(a, b)


# --- layer out of range ------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [3, -1, 99])
def test_bad_layer_names_the_valid_range(tokenizer, tiny_model, layer):
    msg = rf"layer {layer} is out of range: tiny-bert has 3 layers, so layer must be 0\.\.2"
    with pytest.raises(ValueError, match=msg):
        mlp_module_name(tiny_model, layer)
    with pytest.raises(ValueError, match=msg):
        mlp_activations(tiny_model, tokenizer, ["I saw him."], "him", [0, layer])
    with pytest.raises(ValueError, match=msg):
        with ablate_neurons(tiny_model, layer, [0]):
            pass
    with pytest.raises(ValueError, match=msg):
        part1(tiny_model, tokenizer, "him_her", layer=layer)
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("layer", [1.0, "2", True, None])
def test_non_integer_layer(tiny_model, layer):
    with pytest.raises(TypeError, match=r"layer must be an integer 0\.\.2"):
        check_layer(tiny_model, layer)


def test_no_layers(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="layers is empty"):
        mlp_activations(tiny_model, tokenizer, ["I saw him."], "him", [])


# --- neuron indices ----------------------------------------------------------------------------

@pytest.mark.parametrize("neurons, err, msg", [
    ([0, 48], IndexError, r"neuron index 48 is out of range in layer 1: valid 0\.\.47"),
    ([-1], IndexError, r"neuron index -1 is out of range in layer 1: valid 0\.\.47"),
    ([1.5, 2.0], TypeError, r"integer indices or a boolean mask \[48\], got float64"),
    (np.ones(47, dtype=bool), ValueError, r"boolean neuron mask must have shape \(48,\)"),
])
def test_bad_neurons_are_named(tiny_model, neurons, err, msg):
    with pytest.raises(err, match=msg):
        with ablate_neurons(tiny_model, 1, neurons):
            pass
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("empty", [[], np.zeros(48, dtype=bool), np.array([], dtype=np.int64)])
def test_empty_neuron_set_is_a_noop_said_in_output(tokenizer, tiny_model, empty, capsys):
    texts = ["The dog followed [MASK] home."]
    before = masked_logits(tiny_model, tokenizer, texts, ["him", "her"])
    with ablate_neurons(tiny_model, 1, empty):
        assert hooks_attached(tiny_model) == []
        during = masked_logits(tiny_model, tokenizer, texts, ["him", "her"])
    assert np.array_equal(before, during)
    assert "neuron set for layer 1 is empty, so nothing is ablated" in capsys.readouterr().out


def test_neuron_index_dedups_and_sorts():
    assert neuron_index([5, 1, 5], 8).tolist() == [1, 5]


# --- zero-variance neurons ---------------------------------------------------------------------

def test_zero_variance_neurons_are_left_out_of_fdr_and_counted(monkeypatch):
    import helpers.stats as mt

    seen = []
    real = mt.fdrcorrection

    def checked(p, *a, **k):
        seen.append(np.asarray(p).copy())
        assert np.isfinite(p).all(), "NaN p-values reached fdrcorrection"
        return real(p, *a, **k)

    monkeypatch.setattr(mt, "fdrcorrection", checked)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 6))
    b = a - 1.0 + 0.1 * rng.normal(size=(20, 6))
    b[:, 2] = a[:, 2]            # no difference at all
    b[:, 4] = a[:, 4] - 3.0      # a constant difference: a mean but no variance
    a[:, 5] = b[:, 5] = 0.0      # a dead neuron
    res = paired_ttest_fdr(a, b)
    assert len(seen) == 1 and seen[0].shape == (3,)
    assert res.n_excluded == 3
    assert np.isnan(res.t[[2, 4, 5]]).all() and np.isnan(res.p_adj[[2, 4, 5]]).all()
    assert not res.significant[[2, 4, 5]].any() and res.significant[[0, 1, 3]].all()
    assert "3 neurons with zero variance left out of the correction" in res.summary("him", "her")


def test_all_neurons_zero_variance():
    a = np.zeros((5, 4))
    res = paired_ttest_fdr(a, a)
    assert res.n_excluded == 4 and not res.significant.any()
    assert res.summary().startswith("0 of 4 neurons pass FDR")


# --- [MASK] texts ------------------------------------------------------------------------------

def test_text_without_mask_is_named(tokenizer, tiny_model):
    with pytest.raises(StimulusError, match=r"text 1 'No mask here\.' has no \[MASK\]"):
        masked_logits(tiny_model, tokenizer, ["A [MASK] here.", "No mask here."], ["him"])


def test_several_masks_give_one_row_per_mask(tokenizer, tiny_model):
    texts = ["[MASK] told [MASK] to wait.", "The dog followed [MASK] home."]
    out = masked_logits(tiny_model, tokenizer, texts, ["him", "her", "he"])
    assert out.shape == (2, 2, 3)
    assert np.isfinite(out[0]).all() and np.isfinite(out[1, 0]).all() and np.isnan(out[1, 1]).all()
    alone = masked_logits(tiny_model, tokenizer, texts[1:], ["him", "her", "he"])
    np.testing.assert_allclose(out[1, 0], alone[0, 0], rtol=1e-5, atol=1e-5)   # padding does not leak in


def test_causal_model_needs_exactly_one_mask(monkeypatch, tokenizer, tiny_model):
    import helpers.readout as L
    monkeypatch.setattr(L, "is_causal", lambda model: True)
    with pytest.raises(StimulusError, match=r"text 0 '\[MASK\] and \[MASK\]\.'.*exactly one \[MASK\] \(found 2\)"):
        masked_logits(tiny_model, tokenizer, ["[MASK] and [MASK]."], ["him"])


def test_multi_token_word_cannot_be_read(tokenizer, tiny_model):
    with pytest.raises(StimulusError, match=r"the word 'Ximena' is 3 tokens"):
        masked_logits(tiny_model, tokenizer, ["I saw [MASK]."], ["him", "Ximena"])


# --- exceptions and Ctrl-C inside a hooked forward ---------------------------------------------

class Boom(Exception):
    pass


def _fail_in(monkeypatch, model, name: str, exc: type[BaseException]):
    """Make the module `name` raise `exc` when it runs (after the earlier hooked modules ran)."""
    module = get_module(model, name)

    def forward(*a, **k):
        raise exc("interrupted inside the forward pass")

    monkeypatch.setattr(module, "forward", forward)


def _run(tool: str, model, tok):
    enc = tok(["The dog followed [MASK] home."], return_tensors="pt")
    pre0, pre2 = mlp_module_name(model, 0), mlp_module_name(model, 2)
    if tool == "Trace":
        with Trace(model, pre0):
            model(**enc)
    elif tool == "TraceDict":
        with TraceDict(model, [pre0, pre2], stop=True):
            model(**enc)
    elif tool == "ablate_neurons":
        with ablate_neurons(model, 0, [1, 2, 3]):
            model(**enc)
    else:
        mlp_activations(model, tok, ["The dog followed him home."], "him", [0, 2], batch_size=1)


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("tool", ["Trace", "TraceDict", "ablate_neurons", "mlp_activations"])
def test_no_hook_left_after_an_exception_in_the_forward(monkeypatch, tokenizer, tool, exc):
    from conftest import tiny_bert
    model = tiny_bert()
    _fail_in(monkeypatch, model, "bert.encoder.layer.1.output", exc)
    with pytest.raises(exc, match="interrupted"):
        _run(tool, model, tokenizer)
    assert hooks_attached(model) == []


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_no_hook_left_when_the_hook_itself_raises(tokenizer, tiny_model, exc):
    def edit(out, module):
        raise exc("edit failed")

    enc = tokenizer(["I saw him."], return_tensors="pt")
    with pytest.raises(exc, match="edit failed"):
        with TraceDict(tiny_model, [mlp_module_name(tiny_model, i) for i in range(3)], edit_output=edit):
            tiny_model(**enc)
    assert hooks_attached(tiny_model) == []


def test_stop_forward_is_swallowed_and_nothing_else(tokenizer, tiny_model):
    enc = tokenizer(["I saw him."], return_tensors="pt")
    with Trace(tiny_model, mlp_module_name(tiny_model, 0), stop=True) as t:
        tiny_model(**enc)
        pytest.fail("the forward pass should have stopped")
    assert t.output is not None and hooks_attached(tiny_model) == []
    with pytest.raises(StopForward):     # outside a Trace nobody swallows it
        raise StopForward("x")


def test_trace_built_outside_with_leaks_nothing(tiny_model):
    Trace(tiny_model, mlp_module_name(tiny_model, 0))
    TraceDict(tiny_model, [mlp_module_name(tiny_model, 1)])
    ablate_neurons(tiny_model, 1, [0])          # a context manager never entered
    assert hooks_attached(tiny_model) == []


def test_bad_module_name_registers_nothing(tiny_model):
    with pytest.raises(LookupError, match="no module 'bert.encoder.layer.1.intermediat'.*Close names"):
        TraceDict(tiny_model, [mlp_module_name(tiny_model, 0), "bert.encoder.layer.1.intermediat"])
    assert hooks_attached(tiny_model) == []


# --- same seed, same model: bit-identical summaries ---------------------------------------------

DIGEST = r'''
import hashlib, json, sys, torch
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import tiny_bert
from transformers import AutoTokenizer
from helpers.loading import _base_dir
from helpers.lecture import part1, part2, part3
from helpers.lesion import ablate_neurons
from helpers.readout import masked_logits
torch.set_num_threads({threads})
model, tok = tiny_bert(seed=0), AutoTokenizer.from_pretrained(_base_dir())
p1 = part1(model, tok, "him_her", layer=1, q=0.5)
p2 = part2(model, tok, "him_her")
p3 = part3(model, tok, p1, p2)
rng = np.random.default_rng(0)
with ablate_neurons(model, 1, [0, 5, 7], mode="resample", values=rng.normal(size=(10, 48)), seed=3, verbose=False):
    res = masked_logits(model, tok, [t for t, _ in p1.contrast.tests], ["him", "her"])
h = lambda *xs: hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in xs)).hexdigest()
print(json.dumps(dict(s1=p1.summary(), s2=p2.summary(), s3=p3.summary(),
                      acts=h(p1.acts_a, p1.acts_b), test=h(p1.test.t, p1.test.p, p1.test.p_adj),
                      logits=h(p2.logits, p3.logits), resample=h(res))))
'''


def _digest_script() -> str:
    return DIGEST.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads())


def _digest_here() -> dict:
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(_digest_script(), "digest", "exec"), {"__name__": "digest"})
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def _digest_subprocess() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
           "PYTHONHASHSEED": "random"}
    r = subprocess.run([sys.executable, "-c", _digest_script()], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_same_seed_same_model_bit_identical_in_process_and_across_processes():
    here = [_digest_here(), _digest_here()]
    fresh = [_digest_subprocess(), _digest_subprocess()]
    assert here[0] == here[1], "two runs in one process differ"
    assert fresh[0] == fresh[1], "two fresh processes differ"
    assert here[0] == fresh[0], "this process and a fresh one differ"
    assert "Part 1 | tiny-bert, layer 1" in here[0]["s1"] and here[0]["s3"].startswith("Part 3")
