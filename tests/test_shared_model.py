"""The kit shares the model (issue #25, item 1): transformers (5.x) installs its own permanent, inert forward
hooks the first time a model runs with output_hidden_states=True. After that, every notebook's main calls and
every exercise check run with no hook warning, the fast null keeps its fast path, nothing misreads those
hooks as a leak, and hidden_states still works at the end."""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers
from helpers import fast, lecture
from helpers.arch import default_layer
from helpers.controls import lesion_test
from helpers.hooks import hook_snapshot, hooks_attached, library_hook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import mutation as M  # noqa: E402


@pytest.fixture(scope="module")
def shared():
    """A fresh stand-in that has already run once with output_hidden_states=True."""
    model, tok = helpers.load_mlm("stand-in", verbose=False)
    with torch.no_grad():
        model(**tok("She thanked [MASK].", return_tensors="pt"), output_hidden_states=True)
    return model, tok


def _hidden_states_work(model, tok) -> bool:
    with torch.no_grad():
        out = model(**tok("He saw [MASK] there.", return_tensors="pt"), output_hidden_states=True)
    return len(out.hidden_states) == model.config.num_hidden_layers + 1


def test_transformers_hooks_are_library_hooks(shared):
    model, _ = shared
    found = [fn for m in model.modules() for fn in m._forward_hooks.values()]
    if not found:
        pytest.fail("transformers installed no output-capturing hooks: this test needs transformers >= 5 "
                    "(on 4.x there is nothing to share, and the rest of this file still runs)")
    assert all(library_hook(fn) for fn in found)
    assert hooks_attached(model) == [] and hooks_attached(model, observers=False, libraries=True) == []
    assert hooks_attached(model, libraries=True)


def test_main_calls_and_checks_leave_the_model_shared(shared, recwarn):
    model, tok = shared
    before = hook_snapshot(model)
    layer = default_layer(model)
    p1 = lecture.part1(model, tok, "him_her", layer)
    p2 = lecture.part2(model, tok, "him_her")
    lecture.part3(model, tok, p1, p2)
    assert not fast._hooked(model)                        # the fast path stays on
    her = [t for t, w in p1.contrast.tests if w == p1.contrast.b]
    r = lesion_test(model, tok, layer, p1.neurons(p1.contrast.b), her, target=p1.contrast.b, foil=p1.contrast.a,
                    n_draws=20)
    assert r.n_texts == len(her)
    for label, (notebook, call) in M.EXERCISES.items():
        ns = M.namespace()
        exec(compile(M.exercise_cell(label)[0], f"<{label}>", "exec"), ns)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            call(ns, model, tok)
        assert out.getvalue().startswith("✓"), f"({label}): {out.getvalue()}"
    hooky = [str(w.message) for w in recwarn if "hook" in str(w.message)]
    assert not hooky, hooky
    assert hook_snapshot(model) == before                 # none removed, none added
    assert _hidden_states_work(model, tok)


def test_the_fast_null_is_used_with_library_hooks_on(shared):
    model, tok = shared
    texts = ["She thanked [MASK] for the ride.", "We met [MASK] at the station."]
    pos = [p[0] for p in helpers.mask_positions(tok, texts)]
    sets = np.zeros((3, 1536), bool)
    sets[:, :100] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast_out = fast.ablation_logit_diffs(model, tok, texts, pos, 4, sets, "him", "her")
    slow_out = fast.ablation_logit_diffs(model, tok, texts, pos, 4, sets, "him", "her", fast=False)
    assert np.allclose(fast_out, slow_out, atol=1e-3)
