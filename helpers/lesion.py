"""Reading predictions and lesioning MLP neurons.

    word_ids(tok, words)                          token id of each word (one token each, or an error)
    logits_at(model, tok, texts, positions, words) -> [n_texts, n_positions, n_words]
    masked_logits(model, tok, texts, words)      -> [n_texts, n_masks, n_words] at each [MASK]
    ablate_neurons(model, layer, neurons, ...)    context manager: zero/mean/resample chosen neurons
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from .hooks import Trace
from .models import check_layer, is_causal, mlp_module_name, n_neurons
from .stimuli import MASK, StimulusError, mask_positions, model_text

MODES = ("zero", "mean", "resample")


def word_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Vocabulary id of each word; a word the tokenizer splits is an error naming it."""
    ids = []
    space = _needs_space(tokenizer)
    for w in words:
        pieces = tokenizer.tokenize(" " + w if space else w)
        if len(pieces) != 1:
            raise StimulusError(f"the word {w!r} is {len(pieces)} tokens for this tokenizer ({pieces}); "
                                f"logits can only be read for one-token words")
        ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    return ids


def _needs_space(tokenizer) -> bool:
    """BPE tokenizers (GPT-2, RoBERTa) mark a word after a space differently from a word start."""
    return tokenizer.tokenize(" x")[0] != tokenizer.tokenize("x")[0]


@torch.no_grad()
def logits_at(model, tokenizer, texts: Sequence[str], positions, words: Sequence[str]) -> np.ndarray:
    """Logits of `words` at token `positions` of each text: array [n_texts, n_positions, n_words].

    positions: one list of token indices for all texts, or one list per text (equal lengths).
    """
    ids = word_ids(tokenizer, words)
    if positions and isinstance(positions[0], (int, np.integer)):
        positions = [list(positions)] * len(texts)
    texts = [model_text(tokenizer, t) for t in texts]  # [MASK] -> the tokenizer's mask token
    enc = tokenizer(texts, return_tensors="pt", padding=True).to(next(model.parameters()).device)
    logits = model(**enc).logits
    out = np.empty((len(texts), len(positions[0]), len(ids)), dtype=np.float32)
    for i, pos in enumerate(positions):
        out[i] = logits[i, pos][:, ids].float().cpu().numpy()
    return out


@torch.no_grad()
def masked_logits(model, tokenizer, texts: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """Logits of `words` at every [MASK] of each text: array [n_texts, n_masks, n_words].

    Texts may hold different numbers of [MASK]s; missing slots are NaN. A text
    with no [MASK] is an error. For a causal LM (GPT-2) the text is cut at its one
    [MASK] and the next-token logits are returned.
    """
    if isinstance(words, str):
        words = [words]
    if is_causal(model):
        return _next_token_logits(model, tokenizer, texts, words)
    pos = mask_positions(tokenizer, texts)
    width = max(len(p) for p in pos)
    out = np.full((len(texts), width, len(words)), np.nan, dtype=np.float32)
    for k in sorted({len(p) for p in pos}):
        rows = [i for i, p in enumerate(pos) if len(p) == k]
        out[rows, :k] = logits_at(model, tokenizer, [texts[i] for i in rows], [pos[i] for i in rows], words)
    return out


def _next_token_logits(model, tokenizer, texts, words) -> np.ndarray:
    prefixes = []
    for i, t in enumerate(texts):
        if t.count(MASK) != 1:
            raise StimulusError(f"text {i} {t!r}: a causal model predicts one next token, so the text needs "
                                f"exactly one {MASK} (found {t.count(MASK)})")
        prefixes.append(t.split(MASK)[0].rstrip())
    ids = word_ids(tokenizer, words)
    out = np.empty((len(texts), 1, len(ids)), dtype=np.float32)
    for i, pre in enumerate(prefixes):  # one at a time: GPT-2 has no pad token by default
        enc = tokenizer(pre, return_tensors="pt").to(next(model.parameters()).device)
        out[i, 0] = model(**enc).logits[0, -1, ids].float().cpu().numpy()
    return out


def neuron_index(neurons, width: int, layer: int | None = None) -> torch.Tensor:
    """Neuron indices from a boolean mask [width] or a list of ints; errors name the bad index."""
    arr = np.asarray(neurons)
    where = f" in layer {layer}" if layer is not None else ""
    if arr.dtype == bool:
        if arr.shape != (width,):
            raise ValueError(f"a boolean neuron mask must have shape ({width},), got {arr.shape}")
        arr = np.flatnonzero(arr)
    else:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"neurons must be integer indices or a boolean mask [{width}], got {arr.dtype} "
                            f"values such as {arr.ravel()[0]!r}")
        arr = arr.astype(np.int64).ravel() if arr.size else np.zeros(0, dtype=np.int64)
        bad = arr[(arr < 0) | (arr >= width)]
        if bad.size:
            raise IndexError(f"neuron index {int(bad[0])} is out of range{where}: valid 0..{width - 1}")
    return torch.as_tensor(np.unique(arr), dtype=torch.long)


def _row_positions(positions, batch: int, seq: int) -> list[list[int] | None]:
    """Per-row token indices to edit; None = all tokens of that row."""
    if positions is None:
        return [None] * batch
    if isinstance(positions, (int, np.integer)):
        return [[int(positions)]] * batch
    positions = list(positions)
    if len(positions) != batch:
        raise ValueError(f"positions has {len(positions)} entries but the batch has {batch} rows")
    rows = []
    for r, p in enumerate(positions):
        if p is None:
            rows.append([])
        else:
            p = [int(p)] if isinstance(p, (int, np.integer)) else [int(x) for x in p]
            if any(not 0 <= x < seq for x in p):
                raise IndexError(f"row {r}: position {p} is outside the sequence (length {seq})")
            rows.append(p)
    return rows


@contextmanager
def ablate_neurons(model, layer: int, neurons, positions=None, mode: str = "zero", values=None,
                   site: str = "post", seed: int = 0, verbose: bool = True):
    """Replace chosen MLP neurons' values during forward passes inside the `with` block.

    neurons: boolean mask [n_neurons] or indices. positions: None (every token),
    an int (that token in every row), or one entry per batch row (int, list of ints,
    or None to leave the row alone). mode: "zero"; "mean" (values: [n_neurons] mean
    over a stimulus set); "resample" (values: [n_samples, n_neurons], one random
    sample per edited token, seeded). site "post" edits after the nonlinearity
    (for GELU, zeroing "pre" gives the same result, since GELU(0) = 0).
    """
    check_layer(model, layer)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    width = n_neurons(model, layer)
    idx = neuron_index(neurons, width, layer)
    if idx.numel() == 0:
        if verbose:
            print(f"ablate_neurons: the neuron set for layer {layer} is empty, so nothing is ablated.")
        yield
        return
    if mode in ("mean", "resample"):
        if values is None:
            raise ValueError(f"mode={mode!r} needs `values` (mean: [{width}], resample: [n_samples, {width}])")
        values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
        want = (width,) if mode == "mean" else (None, width)
        if values.ndim != len(want) or values.shape[-1] != width:
            raise ValueError(f"mode={mode!r}: values must have shape {want}, got {tuple(values.shape)}")
    gen = torch.Generator().manual_seed(seed)

    def edit(out, module):
        out = out.clone()
        sel = idx.to(out.device)
        for r, pos in enumerate(_row_positions(positions, out.shape[0], out.shape[1])):
            if pos == []:
                continue
            tok = torch.arange(out.shape[1]) if pos is None else torch.tensor(pos)
            if mode == "zero":
                new = torch.zeros(len(tok), len(sel))
            elif mode == "mean":
                new = values[idx].expand(len(tok), -1)
            else:
                new = values[torch.randint(values.shape[0], (len(tok),), generator=gen)][:, idx]
            out[r, tok.to(out.device)[:, None], sel[None, :]] = new.to(out)
        return out

    with Trace(model, mlp_module_name(model, layer, site), retain_output=False, edit_output=edit):
        yield
