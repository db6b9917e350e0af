"""Checker for notebook 03's exercise (e): an ablation hook that zeroes neurons at the [MASK] only and is
always removed.

The check ablates at a middle layer (not the last: there an edit at other tokens could not reach the [MASK]'s
logits, so "every token" would look right), on two sentences that expect the two words in both directions,
with a fixed set of the layer's neurons: 40% of them, or more where 40% moves the logits too little on this
model to tell a lesion from none. Before the student's code runs it computes the right answer and the usual
wrong ones (nothing ablated, every token, one token off, the other neurons, the sign, another layer) and
checks that they differ; where they do not, it says it cannot tell instead of passing. Then the student's
function runs twice more: once while every forward pass fails at the hooked layer (the hook must come off
anyway). Whatever the function changes (weights, mode, hooks) is named as the mistake and put back.
"""
from __future__ import annotations

import numpy as np

from ..arch import mlp_module_name, n_layers, n_neurons
from ..hooks import remove_hooks_since
from ..lesion import ablate_neurons
from ..readout import logits_at, masked_logits
from ..stimuli import mask_positions
from ._guard import judging, remembered
from ._report import Mistake, confusable, diagnose, num, one_number, tolerance, verdict

ABLATE_CASES = [("My sister called, so I thanked [MASK] for the gift.", "her", "him"),
                ("When my grandfather arrived, we hugged [MASK] at the door.", "him", "her")]
FRACTIONS = (0.4, 0.7, 0.9)
TOL = 1e-4


def check_layer_for(model) -> int:
    """The layer the check ablates: the middle one, but never the last (where edits elsewhere cannot reach
    the [MASK]) when the model has two layers or more."""
    n = n_layers(model)
    return max(0, min(n // 2, n - 2))


def _neurons(model, layer: int, fraction: float) -> np.ndarray:
    """A fixed `fraction` of the layer's neurons (sorted indices)."""
    width = n_neurons(model, layer)
    return np.sort(np.random.default_rng(7).choice(width, size=max(1, int(fraction * width)), replace=False))


def _diff(model, tokenizer, text, words, layer=None, neurons=None, where="mask") -> float:
    """logit(words[0]) - logit(words[1]) at the [MASK], with `neurons` of `layer` zeroed at `where`:
    "mask" (the [MASK] only), "all" (every token) or an int shift from the [MASK] (-1: the token before)."""
    at = mask_positions(tokenizer, [text])
    if layer is None:
        lg = masked_logits(model, tokenizer, [text], list(words))[0, 0]
        return float(lg[0] - lg[1])
    edit = None if where == "all" else [[p + (0 if where == "mask" else int(where)) for p in at[0]]]
    with ablate_neurons(model, layer, neurons, positions=edit, verbose=False):
        lg = logits_at(model, tokenizer, [text], at, list(words))[0, 0]
    return float(lg[0] - lg[1])


def _per_case(f) -> np.ndarray:
    return np.array([f(text, (e, o)) for text, e, o in ABLATE_CASES])


def variants(model, tokenizer, layer: int, neurons: np.ndarray, want: np.ndarray) -> dict:
    """{key: (text, [n_cases])} of the usual wrong ablations on this model."""
    rest = np.setdiff1d(np.arange(n_neurons(model, layer)), neurons)
    d = lambda **kw: _per_case(lambda t, w: _diff(model, tokenizer, t, w, **kw))  # noqa: E731
    out = {
        "nothing-ablated": ("nothing was ablated: your result is the clean logit difference. Is the hook on "
                            "encoder.layer[layer].intermediate.dense; does the forward pass run while it is attached "
                            "(inside the with block, before handle.remove()); and does your hook RETURN the edited "
                            "tensor? (a forward hook that returns None leaves the output as it was, so editing a "
                            "clone without returning it changes nothing)", d()),
        "every-token": ("you zeroed the neurons at EVERY token; the exercise asks for the [MASK] only "
                        "(output[:, pos, neurons] with pos the [MASK]'s index, not output[:, :, neurons])",
                        d(layer=layer, neurons=neurons, where="all")),
        "token-before": ("you zeroed the token just BEFORE the [MASK]: its index counts [CLS] at 0 (find it where "
                         "input_ids == tokenizer.mask_token_id)", d(layer=layer, neurons=neurons, where=-1)),
        "token-after": ("you zeroed the token just AFTER the [MASK]", d(layer=layer, neurons=neurons, where=1)),
        "sign-flipped": ("your sign is flipped: report logit(expected) - logit(other)", -want),
        "other-neurons": ("you zeroed the other neurons (the complement of `neurons`)",
                          d(layer=layer, neurons=rest)),
    }
    for other in range(n_layers(model)):
        if other != layer:
            out[f"layer-{other - layer:+d}"] = (f"you ablated layer {other}, not layer {layer}: hook encoder.layer"
                                                f"[layer] with the `layer` you are given",
                                                d(layer=other, neurons=neurons))
    return out


def _plan(model, tokenizer, layer: int):
    """(neurons, want, variants) for the smallest fraction at which every usual mistake differs from the right
    answer on this model (the last fraction tried when none does)."""
    for fraction in FRACTIONS:
        neurons = _neurons(model, layer, fraction)
        want = _per_case(lambda t, w: _diff(model, tokenizer, t, w, layer, neurons))
        named = variants(model, tokenizer, layer, neurons, want)
        if not confusable(want, named, TOL):
            break
    return neurons, want, named


def ablated_logit_diff(fn, model, tokenizer) -> None:
    """(e) fn(model, tokenizer, text, layer, neurons, expected, other) -> logit(expected) - logit(other) at the
    [MASK] with `neurons` of the layer's MLP zeroed at the [MASK] only; the hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(e) ablated_logit_diff"
    with judging(ex, model, tokenizer) as j:
        layer = check_layer_for(model)
        neurons, want, named = remembered(("e", id(model)), lambda: _plan(model, tokenizer, layer))
        raw = [j.call(fn, model, tokenizer, t, layer, neurons.copy(), e, o, context=f"on {t!r}")
               for t, e, o in ABLATE_CASES]
        got = np.array([one_number(ex, v, f"for {t!r}") for v, (t, _, _) in zip(raw, ABLATE_CASES)])
        tol = max(tolerance(v, TOL) for v in raw)
        scale = max(1.0, float(np.abs(want).max()))
        if not np.allclose(got, want, atol=tol * scale, rtol=0):
            k = int(np.flatnonzero(np.abs(got - want) > tol * scale)[0])
            t, e, o = ABLATE_CASES[k]
            diagnose(ex, got, named, f"for {t!r} your value is {num(got[k])}, the kit's is {num(want[k])} "
                                     f"(logit({e}) - logit({o}) at the [MASK] with {len(neurons)} neurons of layer "
                                     f"{layer} zeroed there)", tol)
        t, e, o = ABLATE_CASES[0]
        left = j.call_failing(fn, model, tokenizer, t, layer, neurons.copy(), e, o,
                              fail_at=mlp_module_name(model, layer, "pre"))
        if left:
            key, text = left[0]
            if key == "hook-left":
                key, text = "hook-left-on-failure", ("right value, but when the forward pass fails your hook stays "
                                                     "attached (the check removed it): put handle.remove() in a "
                                                     "finally: block, or use a with block")
            raise Mistake(ex, text, key)
        clean = named["nothing-ablated"][1]
        shown = "; ".join(f"{e}-{o} {num(c, 3)} -> {num(w, 3)}" for (_, e, o), c, w in zip(ABLATE_CASES, clean, want))
        verdict(ex, want, named, TOL, f"{len(neurons)} neurons of layer {layer} (a middle layer) zeroed at the [MASK] "
                                      f"only, in both directions ({shown}), as the kit's ablate_neurons gives (random "
                                      f"neurons, so either direction is possible); the hook is removed even when the "
                                      f"forward pass fails")


def remove_hooks(model) -> list:
    """Remove every hook left on `model` by your code (e.g. by an exercise run that failed), and none that a
    library such as transformers installed; returns where they were ([(module name, kind)])."""
    return remove_hooks_since(model, set())
