"""Checker for notebook 03: (e) an ablation hook that zeroes neurons at the [MASK] only and is always removed.

The check runs the student's function once on a sentence with a [MASK], at a middle layer (not the last: at
the last layer an edit at other tokens could not reach the [MASK]'s logits, so "every token" would look
right), with a fixed 40% of the layer's neurons; then once more while every forward pass fails, to see that
the hook comes off anyway. A wrong value is compared with the usual wrong answers (every token, one token
off, nothing ablated, the other neurons, the sign, another layer) to name the mistake.
"""
from __future__ import annotations

import numpy as np

from ..arch import n_layers, n_neurons
from ..hooks import hooks_attached
from ..lesion import ablate_neurons
from ..readout import logits_at, masked_logits
from ..stimuli import mask_positions
from ._report import Mistake, close, passed, run, take_hooks_off
from .predict import one_number

ABLATE_TEXT, ABLATE_WORDS = "My sister called, so I thanked [MASK] for the gift.", ("her", "him")


def check_layer_for(model) -> int:
    """The layer the check ablates: the middle one, but never the last (where edits elsewhere cannot reach
    the [MASK]) when the model has two layers or more."""
    n = n_layers(model)
    return max(0, min(n // 2, n - 2))


def _neurons(model, layer: int) -> np.ndarray:
    """A fixed 40% of the layer's neurons: enough to move the logits, so every mistake shows."""
    width = n_neurons(model, layer)
    return np.sort(np.random.default_rng(7).choice(width, size=max(1, int(0.4 * width)), replace=False))


def _diff(model, tokenizer, text, words, layer=None, neurons=None, where="mask") -> float:
    """logit(words[0]) - logit(words[1]) at the [MASK], with `neurons` of `layer` zeroed at `where`:
    "mask" (the [MASK] only), "all" (every token) or an int shift from the [MASK] (-1: the token before)."""
    at = mask_positions(tokenizer, [text])
    if layer is None:
        lg = masked_logits(model, tokenizer, [text], list(words))[0, 0]
        return float(lg[0] - lg[1])
    if where == "all":
        edit = None
    else:
        shift = 0 if where == "mask" else int(where)
        edit = [[p + shift for p in at[0]]]
    with ablate_neurons(model, layer, neurons, positions=edit, verbose=False):
        lg = logits_at(model, tokenizer, [text], at, list(words))[0, 0]
    return float(lg[0] - lg[1])


def ablated_logit_diff(fn, model, tokenizer) -> None:
    """(e) fn(model, tokenizer, text, layer, neurons, expected, other) -> logit(expected) - logit(other) at the
    [MASK] with `neurons` of the layer's MLP zeroed at the [MASK] only; the hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(e) ablated_logit_diff"
    if hooks_attached(model):
        raise Mistake(ex, f"hooks were attached before the check ran ({hooks_attached(model)[:2]}): an earlier run "
                          f"left them; run helpers.check.remove_hooks(model), then this cell again")
    layer = check_layer_for(model)
    neurons = _neurons(model, layer)
    e, o = ABLATE_WORDS
    try:
        value = run(ex, fn, model, tokenizer, ABLATE_TEXT, layer, neurons.copy(), e, o)
    finally:
        left = hooks_attached(model)
        if left:
            take_hooks_off(model)
    if left:
        raise Mistake(ex, f"your hook is still attached after your function returned (on {left[0][0]}; the check "
                          f"removed it). Left there, it silently edits every later forward pass: remove it in a "
                          f"finally: block (handle.remove()), or use a with block")
    got = one_number(ex, value, ABLATE_TEXT)
    want = _diff(model, tokenizer, ABLATE_TEXT, (e, o), layer, neurons)
    if not close(got, want, 1e-4):
        _diagnose_ablation(ex, got, want, model, tokenizer, layer, neurons)
    handle = model.register_forward_pre_hook(_fail)
    try:
        fn(model, tokenizer, ABLATE_TEXT, layer, neurons.copy(), e, o)
    except Exception:  # noqa: BLE001  the planted failure
        pass
    finally:
        handle.remove()
    left = hooks_attached(model)
    if left:
        take_hooks_off(model)
        raise Mistake(ex, f"right value, but when the forward pass fails your hook stays attached (on {left[0][0]}; "
                          f"the check removed it): put handle.remove() in a finally: block, or use a with block")
    clean = _diff(model, tokenizer, ABLATE_TEXT, (e, o))
    return passed(ex, f"{len(neurons)} neurons of layer {layer} (a middle layer) zeroed at the [MASK] only: {e}-{o} "
                      f"{clean:+.2f} -> {want:+.2f}, as the kit's ablate_neurons gives (random neurons, so either "
                      f"direction is possible); the hook is removed even when the forward pass fails")


def _fail(module, args):
    raise RuntimeError("a forward pass that fails (planted by the check)")


def _diagnose_ablation(ex, got, want, model, tokenizer, layer, neurons) -> None:
    """Raise Mistake naming the first usual wrong answer that `got` matches (each computed only when reached),
    else one saying how far `got` is from the kit's `want`."""
    words = ABLATE_WORDS
    rest = np.setdiff1d(np.arange(n_neurons(model, layer)), neurons)
    d = lambda **kw: lambda: _diff(model, tokenizer, ABLATE_TEXT, words, **kw)  # noqa: E731  (a value, later)
    variants = [
        ("nothing was ablated: your result is the clean logit difference. Is the hook on "
         "encoder.layer[layer].intermediate.dense; does the forward pass run while it is attached (inside the "
         "with block, before handle.remove()); and does your hook RETURN the edited tensor? (a forward hook that "
         "returns None leaves the output as it was, so editing a clone without returning it changes nothing)", d()),
        ("you zeroed the neurons at EVERY token; the exercise asks for the [MASK] only (output[:, pos, neurons] "
         "with pos the [MASK]'s index, not output[:, :, neurons])", d(layer=layer, neurons=neurons, where="all")),
        ("you zeroed the token just BEFORE the [MASK]: its index counts [CLS] at 0 (find it where input_ids == "
         "tokenizer.mask_token_id)", d(layer=layer, neurons=neurons, where=-1)),
        ("you zeroed the token just AFTER the [MASK]", d(layer=layer, neurons=neurons, where=1)),
        ("your sign is flipped: report logit(expected) - logit(other)", lambda: -want),
        ("you zeroed the other neurons (the complement of `neurons`)", d(layer=layer, neurons=rest)),
    ]
    variants += [(f"you ablated layer {other}, not layer {layer}: hook encoder.layer[layer] with the `layer` you "
                  f"are given", d(layer=other, neurons=neurons))
                 for other in sorted(range(n_layers(model)), key=lambda x: abs(x - layer)) if other != layer]
    for text, value in variants:
        if close(got, value(), 1e-4):
            raise Mistake(ex, text)
    raise Mistake(ex, f"your value {got:+.3f} is not the kit's {want:+.3f} (logit({words[0]}) - logit({words[1]}) at "
                      f"the [MASK] with {len(neurons)} neurons of layer {layer} zeroed there)")


def remove_hooks(model) -> list:
    """Remove every forward hook left on `model` (e.g. by an exercise run that failed); returns where they were."""
    return take_hooks_off(model)
