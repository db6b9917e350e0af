"""Checkers for notebooks 02 and 03: (d) the logit difference at a [MASK], (e) an ablation hook at the [MASK] only."""
from __future__ import annotations

import numpy as np
import torch

from ..arch import model_device, n_layers, n_neurons
from ..hooks import eval_mode, get_module, hooks_attached
from ..lesion import ablate_neurons
from ..readout import logits_at, masked_logits
from ..stimuli import mask_positions
from ._report import Mistake, as_array, close, diagnose, passed, run

PREDICT_CASES = [("Anna said that [MASK] would come to the party later.", "she", "he"),
                 ("My brother called, so I thanked [MASK] for the gift.", "him", "her"),
                 ("The girls lost the match, but [MASK] played well.", "they", "we")]


def _at(model, tokenizer, text: str, pos: int, words) -> np.ndarray:
    return logits_at(model, tokenizer, [text], [[pos]], words)[0, 0]


def _one(ex: str, value, text: str) -> float:
    v = as_array(value, ex, "your result")
    if v.size != 1:
        raise Mistake(ex, f"for {text!r} you returned {v.size} numbers (shape {v.shape}); return one float, "
                          f"logit(expected) - logit(other)")
    return float(v.ravel()[0])


def mask_logit_diff(fn, model, tokenizer) -> bool:
    """(d) fn(model, tokenizer, text, expected, other) -> logit(expected) - logit(other) at the text's [MASK]."""
    __tracebackhide__ = True
    ex = "(d) mask_logit_diff"
    got = np.array([_one(ex, run(ex, fn, model, tokenizer, t, e, o), t) for t, e, o in PREDICT_CASES])
    lg = [masked_logits(model, tokenizer, [t], [e, o])[0, 0] for t, e, o in PREDICT_CASES]
    want = np.array([x[0] - x[1] for x in lg])
    if close(got, want, 1e-4):
        return passed(ex, f"logit(expected) - logit(other) right at {len(want)} [MASK]s "
                          f"({', '.join(f'{d:+.2f}' for d in want)})")
    pos = [mask_positions(tokenizer, [t])[0][0] for t, _, _ in PREDICT_CASES]
    n_tok = [len(tokenizer(t)["input_ids"]) for t, _, _ in PREDICT_CASES]
    shifted = lambda k: np.array([(lambda x: x[0] - x[1])(_at(model, tokenizer, t, p + k, [e, o]))  # noqa: E731
                                  for (t, e, o), p in zip(PREDICT_CASES, pos)])
    probs = []
    for (t, e, o), p in zip(PREDICT_CASES, pos):
        with torch.no_grad(), eval_mode(model):
            full = model(**tokenizer(t, return_tensors="pt").to(model_device(model))).logits[0, p].float()
        prob = torch.softmax(full, -1).cpu().numpy()
        ids = tokenizer.convert_tokens_to_ids([e, o])
        probs.append(prob[ids[0]] - prob[ids[1]])
    diagnose(ex, got, {
        "your sign is flipped: the kit reports logit(expected) - logit(other), so that > 0 means the model "
        "prefers the right word (and a lesion that works makes it drop)": -want,
        "you read one token too early: the [MASK]'s index counts [CLS] at 0 (find it where input_ids == "
        "tokenizer.mask_token_id)": shifted(-1),
        "you read one token too late": shifted(1),
        "you read the logits at index 0 ([CLS]), not at the [MASK]": np.array(
            [(lambda x: x[0] - x[1])(_at(model, tokenizer, t, 0, [e, o])) for t, e, o in PREDICT_CASES]),
        "you read the last token ([SEP]), not the [MASK]": np.array(
            [(lambda x: x[0] - x[1])(_at(model, tokenizer, t, n - 1, [e, o]))
             for (t, e, o), n in zip(PREDICT_CASES, n_tok)]),
        "you compared probabilities (after softmax), not logits: a probability difference depends on every other "
        "word; the logit difference is what decides between the two": np.array(probs),
        "your difference is 0: both 'words' are the same token. tokenizer(word)['input_ids'] starts with [CLS]; "
        "take the word's own id with tokenizer.convert_tokens_to_ids(word)": np.zeros_like(want),
    })
    raise Mistake(ex, f"your differences {np.round(got, 2).tolist()} are not the kit's {np.round(want, 2).tolist()}")


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
    got = _one(ex, run(ex, fn, model, tokenizer, ABLATE_TEXT, layer, neurons.copy(), e, o), ABLATE_TEXT)
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
