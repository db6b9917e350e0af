"""Reading MLP neurons: their values at a target word, for any sentences or for both halves of a contrast.

    mlp_activations(model, tok, sentences, target_words, layers, site="pre")
                        -> {layer: array[n_sentences, n_neurons]}, all layers from one forward pass
    contrast_activations(model, tok, contrast, layers, site="pre", at="target")
                        -> (a, b): {layer: array[n_pairs, n_neurons]} for the a and the b sentences

Both run in eval mode with right padding whatever the model's mode and the tokenizer's padding side
(both restored after), on the model's device, and remove every hook they attach (hooks.TraceDict).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _args
from .arch import DEFAULT_SITE, check_layer, check_lengths, mlp_site, model_device
from .hooks import TraceDict, eval_mode, refuse_row_edits, right_padding
from .stimuli import MASK, Contrast, as_contrast, mask_word, model_text, target_positions

AT = ("target", "mask")


def _layer_list(model, layers) -> list[int]:
    """One layer or several -> sorted unique checked layers."""
    single = (isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable)
              or (isinstance(layers, (torch.Tensor, np.ndarray)) and layers.ndim == 0))  # one value: never iterated
    out = sorted({check_layer(model, x) for x in ([layers] if single else layers)})
    if not out:
        raise ValueError("layers is empty: name at least one layer")
    return out


def mlp_activations(model, tokenizer, sentences: Sequence[str], target_words: str | Sequence[str],
                    layers: int | Iterable[int], site: str = DEFAULT_SITE, batch_size: int = 32,
                    wordpiece: str = "last", progress: bool | Callable | None = None,
                    verbose: bool = True) -> dict[int, np.ndarray]:
    """MLP neuron values at the target word of each sentence: {layer: array[n_sentences, n_neurons]}.

    sentences: a list of texts (a single str counts as one sentence).
    layers: one int or several (each checked against the model: 0..n_layers-1).
    site: "pre" (default) = the MLP expansion layer's output before the nonlinearity (BERT:
          `intermediate.dense`, the layer the lecture hooks); "post" = after it; a gated MLP (Llama):
          down_proj's input, act(gate) * up, for either (arch.mlp_site). All `layers` come
          from one forward pass per batch, which stops after the deepest layer asked for.
          Sentences are batched by length (less padding); the result keeps the input order.
    target_words: one word for all sentences or one per sentence; each must occur
          exactly once as a whole word (see stimuli.target_positions).
    wordpiece: read a word split into pieces at its "last" (default) or "first" piece;
          verbose: say so in one printed line when any target word is split.
    progress: True/False for a progress bar (default: on for more than 8 batches), or a function
          called as progress(batches_done, n_batches) after each batch.
    """
    sentences = [model_text(tokenizer, s) for s in _args.texts(sentences)]    # [MASK] -> <mask>
    layer_list = _layer_list(model, layers)
    batch_size = _args.positive_int(batch_size, "batch_size")
    sites = {layer: mlp_site(model, layer, site) for layer in layer_list}
    positions = target_positions(tokenizer, sentences, target_words, wordpiece=wordpiece, verbose=verbose)
    lengths = [len(tokenizer(s)["input_ids"]) for s in sentences]
    check_lengths(model, sentences, lengths, "sentence")
    refuse_row_edits(model, "mlp_activations sorts the sentences by length and runs them in batches, so "
                            "its batch rows are not your sentences")
    if tokenizer.pad_token is None:  # GPT-2 has no pad token: one sentence per forward pass
        batch_size = 1
    order = np.argsort(lengths, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return _capture(model, tokenizer, sentences, positions, sites, batches, progress)


def _capture(model, tokenizer, sentences, positions, sites, batches, progress) -> dict[int, np.ndarray]:
    """Run the batches with a TraceDict on the sites' modules (their outputs, or a gated MLP's down_proj
    inputs); keep each sentence's row at its position."""
    names = {layer: name for layer, (name, _) in sites.items()}
    on = next(iter(sites.values())).on           # one model: one kind of site
    out: dict[int, np.ndarray] = {}
    device = model_device(model)
    report = progress if callable(progress) else None
    show = report is None and (progress if progress is not None else len(batches) > 8)
    it = tqdm(batches, desc=f"capturing layers {sorted(names)}", leave=False) if show else batches
    with torch.no_grad(), eval_mode(model), right_padding(tokenizer):
        for k, idx in enumerate(it):
            enc = tokenizer([sentences[i] for i in idx], return_tensors="pt",
                            padding=tokenizer.pad_token is not None).to(device)
            with TraceDict(model, names.values(), stop=True, on=on) as td:
                model(**enc)
            rows = torch.arange(len(idx))
            pos = torch.tensor([positions[i] for i in idx])
            for layer, name in names.items():
                vals = td[name].value[rows, pos].float().cpu().numpy()
                out.setdefault(layer, np.empty((len(sentences), vals.shape[1]), dtype=np.float32))[idx] = vals
            if report:
                report(k + 1, len(batches))
    return out


def contrast_activations(model, tokenizer, contrast: Contrast | str, layers, site: str = DEFAULT_SITE,
                         at: str = "target", progress: bool | Callable | None = None,
                         verbose: bool = True, wordpiece: str = "last") -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The MLP values of both halves of a contrast: (a, b), each {layer: array[n_pairs, n_neurons]},
    row i of a paired with row i of b. All sentences go through one capture (one pass per batch).

    at: "target" reads each sentence at its target word (the lecture's choice: the token itself
    differs between a and b); "mask" replaces the target word by [MASK] and reads there, so the
    token is the same and only the context differs (controls.mask_selection). wordpiece: as in mlp_activations.
    """
    c = as_contrast(contrast)
    if at not in AT:
        raise ValueError(f"at must be 'target' (read at the target word) or 'mask' (at a [MASK] put in its "
                         f"place), got {at!r}")
    n = len(c.pairs)
    if at == "target":
        sents, words = c.sentences_a + c.sentences_b, [c.a] * n + [c.b] * n
    else:
        sents = [mask_word(s, c.a) for s in c.sentences_a] + [mask_word(s, c.b) for s in c.sentences_b]
        words = MASK
    acts = mlp_activations(model, tokenizer, sents, words, layers, site=site, wordpiece=wordpiece, progress=progress,
                           verbose=verbose)
    return {L: v[:n] for L, v in acts.items()}, {L: v[n:] for L, v in acts.items()}
