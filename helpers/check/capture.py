"""Checker for notebook 01's exercise (b): a capture hook on the MLP expansion layer.

    (b) capture_mlp   post-GELU instead of pre, one token off, [CLS] or [SEP], a mean over tokens, the layer's
                      input or the block's output (shape), a neighbouring layer, a transposed result, rows in
                      another order than the sentences given; a hook left attached after the function
                      returns or after a forward pass that fails; the model's weights, mode or settings changed

The sentences come in an order that is not sorted by length, twice (two orders), so a capture that sorts
them to batch must put its rows back. Every reference is computed on the model before the student's code runs.
"""
from __future__ import annotations

import numpy as np
import torch

from ..arch import mlp_module_name, model_device, n_layers
from ..capture import mlp_activations
from ..hooks import TraceDict, eval_mode, right_padding
from ..stimuli import target_positions
from ._guard import judging, remembered
from ._report import Mistake, as_array, diagnose, num, tolerance, verdict
from .position import returned

CAPTURE_SENTENCES = ["The teacher praised him after the long concert in the hall.", "We met him.",
                     "She thanked him for the ride.", "Nobody had told him that the old station was closed.",
                     "They saw him at dawn."]
ORDERS = ([0, 1, 2, 3, 4], [3, 2, 4, 0, 1])      # neither sorted by length, and different from each other
TOL = 1e-4


def check_layer(model) -> int:
    """The layer the check reads: the middle one (0 for a one-layer model)."""
    return min(n_layers(model) // 2, n_layers(model) - 1)


def _all_tokens(model, tokenizer, sentences, names: list[str]) -> dict[str, list[np.ndarray]]:
    """Every token's output of each module in `names`, per sentence: {name: [[n_tokens, width], ...]}."""
    out = {name: [] for name in names}
    with torch.no_grad(), eval_mode(model), right_padding(tokenizer):
        for s in sentences:
            enc = tokenizer(s, return_tensors="pt").to(model_device(model))
            with TraceDict(model, names) as td:
                model(**enc)
            for name in names:
                out[name].append(td[name].output[0].float().cpu().numpy())
    return out


def variants(model, tokenizer, sentences, layer: int) -> dict:
    """{key: (text, [n_sentences, n_neurons])} of the usual wrong captures, on this model."""
    pos = target_positions(tokenizer, sentences, "him")
    others = [L for L in (layer - 1, layer + 1) if 0 <= L < n_layers(model)]
    names = {key: mlp_module_name(model, L, site) for key, L, site in
             [("pre", layer, "pre"), ("post", layer, "post")] + [(L, L, "pre") for L in others]}
    vals = _all_tokens(model, tokenizer, sentences, list(dict.fromkeys(names.values())))
    pre, post = vals[names["pre"]], vals[names["post"]]
    at = lambda rows, shift: np.stack([v[p + shift] for v, p in zip(rows, pos)])  # noqa: E731
    out = {
        "post-gelu": ("you read the values AFTER GELU (the output of `intermediate`, or GELU applied to the output); "
                      "this exercise asks for the values before it: hook `intermediate.dense`", at(post, 0)),
        "forgot-cls": ("your token is one too early: you forgot [CLS]. The position must count [CLS] at index 0 "
                       "(tokenizer(s)['input_ids'] includes it; tokenizer.tokenize(s) does not)", at(pre, -1)),
        "cls-twice": ("your token is one too late: did you add 1 for [CLS] to an index that already counts it?",
                      at(pre, 1)),
        "read-cls": ("you read the [CLS] token (index 0), not the target word", np.stack([v[0] for v in pre])),
        "read-sep": ("you read the last token ([SEP]), not the target word", np.stack([v[-1] for v in pre])),
        "mean-over-tokens": ("you averaged over all tokens; read the row of the target token only",
                             np.stack([v.mean(0) for v in pre])),
    }
    for other in others:
        out[f"layer-{'below' if other < layer else 'above'}"] = (
            f"these are layer {other}'s values, not layer {layer}'s: hook the `layer` you are given "
            f"({names['pre']}; layers count from 0)", at(vals[names[other]], 0))
    return out


def _shape_mistake(ex: str, got: np.ndarray, want: np.ndarray, model) -> None:
    """Raise the Mistake that explains a result of the wrong shape."""
    n, width = want.shape
    hidden = getattr(model.config, "hidden_size", None)
    if got.shape == (width, n):
        raise Mistake(ex, f"your result is transposed, {got.shape}: return one ROW per sentence, shape (sentences, "
                          f"neurons) = {want.shape} (np.stack of the rows, or .T)", "transposed")
    if got.ndim == 2 and got.shape[0] == n and hidden is not None and got.shape[1] == hidden != width:
        raise Mistake(ex, f"you have {hidden} values per sentence: the width of the residual stream, not of the MLP "
                          f"expansion ({width} neurons). You read the hook's input, the block's output or "
                          f"hidden_states; the neurons are the OUTPUT of intermediate.dense", "residual-stream")
    if got.ndim == 3 or (got.ndim == 2 and got.shape[1] == width and got.shape[0] > n):
        raise Mistake(ex, f"your result has shape {got.shape}: it still holds every token (or the batch "
                          f"dimension). Keep one row per sentence, the target token's: output[0, position]",
                      "every-token")
    raise Mistake(ex, f"your result has shape {got.shape}; expected {want.shape} = (sentences, neurons): one row "
                      f"per sentence, the values at the target token only", "wrong-shape")


def _differs(got: np.ndarray, want: np.ndarray, sentences, tol: float) -> str:
    """One line: the first sentence and neuron where `got` differs from the kit's capture."""
    scale = max(1.0, float(np.abs(want).max()))
    bad = np.argwhere(np.abs(got - want) > tol * scale)
    i, k = (int(bad[0][0]), int(bad[0][1])) if len(bad) else (0, 0)
    return (f"your values differ from the kit's: first in sentence {i} {sentences[i]!r}, neuron {k}: yours "
            f"{num(got[i, k])}, the kit's {num(want[i, k])} ({len(bad)} values differ). Check the module "
            f"(encoder.layer[layer].intermediate.dense, its output), the token (the word's last piece, [CLS] "
            f"counted) and that row i is sentences[i]")


def _rows_reordered(got: np.ndarray, want: np.ndarray, tol: float) -> bool:
    """True when got's rows are want's rows in another order (a capture that sorted its sentences)."""
    scale = max(1.0, float(np.abs(want).max()))
    d = np.abs(got[:, None, :] - want[None, :, :]).max(-1) <= tol * scale
    return bool(d.any(1).all() and not np.diag(d).all())


def _references(model, tokenizer, layer: int) -> tuple[list, dict]:
    """[(sentences, the kit's capture)] for each order, and the usual mistakes on the first."""
    refs = []
    for order in ORDERS:
        sents = [CAPTURE_SENTENCES[i] for i in order]
        refs.append((sents, mlp_activations(model, tokenizer, sents, "him", [layer], verbose=False)[layer]))
    return refs, variants(model, tokenizer, refs[0][0], layer)


def capture_mlp(fn, model, tokenizer) -> None:
    """(b) fn(model, tokenizer, sentences, word, layer) -> [n_sentences, n_neurons] MLP values before GELU
    (the output of encoder.layer[layer].intermediate.dense) at `word`; its hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(b) capture_mlp"
    with judging(ex, model, tokenizer) as j:
        layer = check_layer(model)
        refs, named = remembered(("b", id(model)), lambda: _references(model, tokenizer, layer))
        for k, (sents, want) in enumerate(refs):
            out = j.call(fn, model, tokenizer, list(sents), "him", layer, context=f"on {len(sents)} sentences")
            got = as_array(returned(ex, out), ex, "your result")
            tol = tolerance(out if isinstance(out, torch.Tensor) else got, TOL)
            if got.shape != want.shape:
                _shape_mistake(ex, got, want, model)
            if np.allclose(got, want, atol=tol * max(1.0, float(np.abs(want).max())), rtol=0):
                continue
            if _rows_reordered(got, want, tol):
                raise Mistake(ex, "your rows are the right values in the wrong order: row i must be sentences[i]'s "
                                  "(did you sort the sentences by length to batch them, and not put the rows back?)",
                              "rows-reordered")
            diagnose(ex, got, named if k == 0 else {}, _differs(got, want, sents, tol), tol)
        left = j.call_failing(fn, model, tokenizer, list(refs[0][0]), "him", layer,
                              fail_at=mlp_module_name(model, layer, "pre"))
        if left:
            key, text = left[0]
            if key == "hook-left":
                raise Mistake(ex, f"right values, but when the forward pass fails your hook stays attached (the "
                                  f"check removed it). Put the forward pass in try: and handle.remove() in finally:, "
                                  f"so the hook goes whatever happens", "hook-left-on-failure")
            raise Mistake(ex, text, key)
        verdict(ex, refs[0][1], named, TOL,
                f"pre-GELU values at the target token of layer {layer}, {len(CAPTURE_SENTENCES)} sentences x "
                f"{refs[0][1].shape[1]} neurons, in the order given (two orders); the hook is removed even when "
                f"the forward pass fails")
