"""Checker for notebook 03: (e) an ablation hook that zeroes neurons at the [MASK] only and is always removed."""
from __future__ import annotations

import numpy as np

from ..arch import n_layers, n_neurons
from ..hooks import get_module, hooks_attached
from ..lesion import ablate_neurons
from ..readout import logits_at, masked_logits
from ..stimuli import mask_positions
from ._report import Mistake, close, diagnose, passed, run
from .predict import one_number

ABLATE_TEXT, ABLATE_WORDS = "My sister called, so I thanked [MASK] for the gift.", ("her", "him")


def _neurons(model, layer: int) -> np.ndarray:
    """A fixed 40% of the layer's neurons: enough to move the logits, so every mistake shows."""
    width = n_neurons(model, layer)
    return np.sort(np.random.default_rng(7).choice(width, size=int(0.4 * width), replace=False))


def _diff(model, tokenizer, text, words, layer=None, neurons=None, positions="mask") -> float:
    """logit(words[0]) - logit(words[1]) at the [MASK], with `neurons` of `layer` zeroed at `positions`."""
    if layer is None:
        lg = masked_logits(model, tokenizer, [text], list(words))[0, 0]
        return float(lg[0] - lg[1])
    where = mask_positions(tokenizer, [text]) if positions == "mask" else None
    with ablate_neurons(model, layer, neurons, positions=where, verbose=False):
        lg = logits_at(model, tokenizer, [text], mask_positions(tokenizer, [text]), list(words))[0, 0]
    return float(lg[0] - lg[1])


def ablated_logit_diff(fn, model, tokenizer) -> bool:
    """(e) fn(model, tokenizer, text, layer, neurons, expected, other) -> logit(expected) - logit(other) at the
    [MASK] with `neurons` of the layer's MLP zeroed at the [MASK] only; the hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(e) ablated_logit_diff"
    if hooks_attached(model):
        raise Mistake(ex, f"hooks were attached before the check ran ({hooks_attached(model)[:2]}): an earlier run "
                          f"left them; run helpers.check.remove_hooks(model), then this cell again")
    layer = max(1, n_layers(model) // 2)
    neurons = _neurons(model, layer)
    e, o = ABLATE_WORDS
    got = one_number(ex, run(ex, fn, model, tokenizer, ABLATE_TEXT, layer, neurons.copy(), e, o), ABLATE_TEXT)
    left = hooks_attached(model)
    if left:
        _remove(model)
        raise Mistake(ex, f"your hook is still attached after your function returned ({left[0][0]}; the check "
                          f"removed it): remove it in a finally: block, or use a with block")
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
    if hooks_attached(model):
        _remove(model)
        raise Mistake(ex, "right value, but when the forward pass fails your hook stays attached (the check removed "
                          "it): put handle.remove() in a finally: block, or use a with block")
    clean = _diff(model, tokenizer, ABLATE_TEXT, (e, o))
    return passed(ex, f"{len(neurons)} neurons of layer {layer} zeroed at the [MASK] only: {e}-{o} {clean:+.2f} -> "
                      f"{want:+.2f}; the hook is removed even when the forward pass fails")


def _fail(module, args):
    raise RuntimeError("a forward pass that fails (planted by the check)")


def _remove(model) -> None:
    for name, _ in hooks_attached(model):
        m = model if name == "<root>" else get_module(model, name)
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()


def _diagnose_ablation(ex, got, want, model, tokenizer, layer, neurons) -> None:
    e, o = ABLATE_WORDS
    width = n_neurons(model, layer)
    rest = np.setdiff1d(np.arange(width), neurons)
    variants = {
        "you zeroed the neurons at EVERY token; the exercise asks for the [MASK] only (positions: the [MASK]'s "
        "index in each row)": _diff(model, tokenizer, ABLATE_TEXT, (e, o), layer, neurons, positions=None),
        "nothing was ablated: your result is the clean logit difference (was the hook on the right module, and "
        "did the forward pass run inside the with block / before handle.remove()?)":
            _diff(model, tokenizer, ABLATE_TEXT, (e, o)),
        "you zeroed the other neurons (the complement of `neurons`)": _diff(model, tokenizer, ABLATE_TEXT, (e, o),
                                                                             layer, rest),
        "your sign is flipped: report logit(expected) - logit(other)": -want,
    }
    for other in (layer - 1, layer + 1):
        if 0 <= other < n_layers(model):
            variants[f"you ablated layer {other}, not layer {layer}"] = _diff(model, tokenizer, ABLATE_TEXT, (e, o),
                                                                              other, neurons)
    diagnose(ex, got, variants)
    raise Mistake(ex, f"your value {got:+.3f} is not the kit's {want:+.3f}")


def remove_hooks(model) -> list:
    """Remove every forward hook left on `model` (e.g. by an exercise run that failed); returns where they were."""
    left = hooks_attached(model)
    _remove(model)
    return left
