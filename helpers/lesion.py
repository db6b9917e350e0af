"""Reading predictions and lesioning MLP neurons.

    word_ids(tok, words)                          token id of each word (one known token each, or an error)
    logits_at(model, tok, texts, positions, words) -> [n_texts, n_positions, n_words]
    masked_logits(model, tok, texts, words)      -> [n_texts, n_masks, n_words] at each [MASK]
    ablate_neurons(model, layer, neurons, ...)    context manager: zero/mean/resample chosen neurons
    PositionError                                 a token position outside its text (a ValueError and an IndexError)

Readers run in eval mode (dropout off) with right padding, whatever the model and tokenizer were set to;
both settings are restored afterwards (hooks.eval_mode, hooks.right_padding).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from .hooks import Trace, eval_mode, refuse_row_edits, right_padding
from .models import check_layer, check_lengths, is_causal, mlp_module_name, n_neurons
from .stimuli import MASK, StimulusError, mask_positions, model_text

MODES = ("zero", "mean", "resample")


class PositionError(ValueError, IndexError):
    """A token position outside its text or batch row; the message names the text or row and the valid range."""


def word_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Vocabulary id of each word (a str is one word); a word the tokenizer splits, or does not know ([UNK]),
    is an error naming it."""
    if isinstance(words, str):
        words = [words]
    ids = []
    space = _needs_space(tokenizer)
    unk = getattr(tokenizer, "unk_token_id", None)
    for w in words:
        pieces = tokenizer.tokenize(" " + w if space else w)
        if len(pieces) != 1:
            raise StimulusError(f"the word {w!r} is {len(pieces)} tokens for this tokenizer ({pieces}); "
                                f"logits can only be read for one-token words")
        i = tokenizer.convert_tokens_to_ids(pieces[0])
        if unk is not None and i == unk:
            raise StimulusError(f"the word {w!r} is not in the vocabulary of this tokenizer (it becomes "
                                f"{tokenizer.unk_token!r}, whose logit says nothing about {w!r}); "
                                f"choose a word the tokenizer knows as one token")
        ids.append(i)
    return ids


def _needs_space(tokenizer) -> bool:
    """BPE tokenizers (GPT-2, RoBERTa) mark a word after a space differently from a word start."""
    return tokenizer.tokenize(" x")[0] != tokenizer.tokenize("x")[0]


def _texts(texts) -> list[str]:
    """One text (a str) or a sequence of texts -> a non-empty list of str."""
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no texts: give one text or a list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__} {t!r}, not a string")
    return texts


def _int(p, what: str) -> int | None:
    """p as an int if it is one integer (int, numpy or 0-d array/tensor), else None; bool/float is an error."""
    if isinstance(p, torch.Tensor):
        p = p.detach().cpu().numpy()
    if isinstance(p, np.ndarray) and p.ndim == 0:
        p = p[()]
    if isinstance(p, (bool, np.bool_)):
        raise TypeError(f"{what}: a token position must be an integer, got {p!r}")
    if isinstance(p, (int, np.integer)):
        return int(p)
    if isinstance(p, (float, np.floating, str)):
        raise TypeError(f"{what}: a token position must be an integer, got {type(p).__name__} {p!r}")
    return None


def _ints(p, what: str) -> list[int]:
    """One integer or a sequence (list, array, tensor) of integers -> list of int."""
    one = _int(p, what)
    if one is not None:
        return [one]
    if isinstance(p, torch.Tensor):
        p = p.detach().cpu().numpy()
    try:
        items = list(np.ravel(p)) if isinstance(p, np.ndarray) else list(p)
    except TypeError:
        raise TypeError(f"{what}: expected token positions (ints), got {type(p).__name__} {p!r}") from None
    out = []
    for x in items:
        i = _int(x, what)
        if i is None:
            raise TypeError(f"{what}: expected token positions (ints), got {type(x).__name__} {x!r}")
        out.append(i)
    return out


def _text_positions(positions, n_texts: int) -> tuple[list[list[int]], bool]:
    """positions -> (one list of token indices per text, whether one shared list was given)."""
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    if isinstance(positions, np.ndarray) and positions.ndim <= 1:
        return [_ints(positions, "positions")] * n_texts, True
    if _int(positions, "positions") is not None:
        return [_ints(positions, "positions")] * n_texts, True
    try:
        positions = list(positions)
    except TypeError:
        raise TypeError(f"positions must be token indices: an int, a list of ints (the same for every text) or "
                        f"one list per text; got {type(positions).__name__} {positions!r}") from None
    if not positions:
        raise ValueError("positions is empty: give the token indices to read, e.g. [3] or [[3], [5]]")
    flat = [_int(p, f"positions[{k}]") for k, p in enumerate(positions)]
    if all(p is not None for p in flat):
        return [flat] * n_texts, True
    if any(p is not None for p in flat):
        raise TypeError(f"positions mixes integers and lists ({positions!r}): give one list for all texts "
                        f"([3, 5]: tokens 3 and 5 of every text) or one list per text ([[3], [5]])")
    if len(positions) != n_texts:
        raise ValueError(f"positions has {len(positions)} lists but there are {n_texts} texts: give one list "
                         f"per text, or one flat list of ints for all texts")
    rows = [_ints(p, f"positions for text {i}") for i, p in enumerate(positions)]
    for i, r in enumerate(rows):
        if len(r) != len(rows[0]):
            raise ValueError(f"positions for text {i} has {len(r)} entries but text 0 has {len(rows[0])}: every text "
                             f"needs the same number (masked_logits handles texts with different numbers of [MASK]s)")
    return rows, False


@torch.no_grad()
def logits_at(model, tokenizer, texts: Sequence[str], positions, words: Sequence[str]) -> np.ndarray:
    """Logits of `words` at token `positions` of each text: array [n_texts, n_positions, n_words].

    positions (special tokens counted, as stimuli.target_positions gives them): a flat list of
    ints (or one int) = these tokens of EVERY text; a list of lists = one list per text (equal
    lengths), e.g. [[5], [3], [7]] for one token per text. Each index must lie within its own
    text's tokens (0..n_tokens-1; no negative indices, no padding).
    """
    texts = _texts(texts)
    ids = word_ids(tokenizer, [words] if isinstance(words, str) else words)
    rows, shared = _text_positions(positions, len(texts))
    if not rows[0]:
        raise ValueError("positions is empty: give the token indices to read, e.g. [3] or [[3], [5]]")
    model_texts = [model_text(tokenizer, t) for t in texts]  # [MASK] -> the tokenizer's mask token
    with right_padding(tokenizer), eval_mode(model):
        enc = tokenizer(model_texts, return_tensors="pt", padding=True)
        if "attention_mask" in enc:
            lengths = enc["attention_mask"].sum(1).tolist()
        else:
            lengths = [len(tokenizer(t)["input_ids"]) for t in model_texts]
        check_lengths(model, texts, lengths)
        for i, (pos, n) in enumerate(zip(rows, lengths)):
            bad = [p for p in pos if not 0 <= p < n]
            if bad:
                hint = (f"; a flat list is read in every text: for one position per text write "
                        f"{[[p] for p in rows[0]]}" if shared and len(rows[0]) == len(texts) > 1 else "")
                raise PositionError(f"text {i} {texts[i]!r}: position {bad[0]} is outside its {n} tokens "
                                    f"(valid 0..{n - 1}){hint}")
        logits = model(**enc.to(next(model.parameters()).device)).logits
    out = np.empty((len(texts), len(rows[0]), len(ids)), dtype=np.float32)
    for i, pos in enumerate(rows):
        out[i] = logits[i, pos][:, ids].float().cpu().numpy()
    return out


@torch.no_grad()
def masked_logits(model, tokenizer, texts: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """Logits of `words` at every [MASK] of each text: array [n_texts, n_masks, n_words].

    texts: one string or a list. Texts may hold different numbers of [MASK]s; missing slots
    are NaN. A text with no [MASK] is an error. For a causal LM (GPT-2) the text is cut at its
    one [MASK] and the next-token logits are returned.
    """
    texts = _texts(texts)
    if isinstance(words, str):
        words = [words]
    if is_causal(model):
        return _next_token_logits(model, tokenizer, texts, words)
    pos = mask_positions(tokenizer, texts)
    if len({len(p) for p in pos}) > 1:
        refuse_row_edits(model, "masked_logits runs texts with different numbers of [MASK]s in separate "
                                "batches, so its batch rows are not your texts")
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
    with eval_mode(model):
        for i, pre in enumerate(prefixes):  # one at a time: GPT-2 has no pad token by default
            enc = tokenizer(pre, return_tensors="pt").to(next(model.parameters()).device)
            out[i, 0] = model(**enc).logits[0, -1, ids].float().cpu().numpy()
    return out


def neuron_index(neurons, width: int, layer: int | None = None) -> torch.Tensor:
    """Sorted unique neuron indices from a boolean mask [width] or integer indices (list, set, array, tensor).

    An integer array of 0s and 1s as long as the layer ([width], width > 2) is an error: it looks
    like a 0/1 mask, which would otherwise be read as the indices {0, 1}. Errors name the bad index.
    """
    where = f" in layer {layer}" if layer is not None else ""
    if isinstance(neurons, (set, frozenset)):
        try:
            neurons = sorted(neurons)
        except TypeError:              # mixed types: the dtype check below names them
            neurons = list(neurons)
    if isinstance(neurons, torch.Tensor):
        neurons = neurons.detach().cpu().numpy()
    arr = np.asarray(neurons)
    if arr.dtype == bool:
        if arr.shape != (width,):
            raise ValueError(f"a boolean neuron mask must have shape ({width},), got {arr.shape}")
        arr = np.flatnonzero(arr)
    else:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"neurons must be integer indices or a boolean mask [{width}], got {arr.dtype} "
                            f"values such as {arr.ravel()[0]!r}")
        if arr.shape == (width,) and width > 2 and np.isin(arr, (0, 1)).all():
            raise ValueError(f"neurons{where} is an integer array of {width} zeros and ones, one per neuron: it looks "
                             f"like a 0/1 mask, not indices. Pass a bool array (mask.astype(bool)) for a mask, "
                             f"or the indices (np.flatnonzero(mask))")
        arr = arr.ravel()
        bad = arr[(arr < 0) | (arr >= width)]          # before any cast: 2**64 - 1 must not read as -1
        if bad.size:
            raise IndexError(f"neuron index {int(bad[0])} is out of range{where}: valid 0..{width - 1}")
        arr = arr.astype(np.int64) if arr.size else np.zeros(0, dtype=np.int64)
    return torch.as_tensor(np.unique(arr), dtype=torch.long)


def _parse_positions(positions):
    """ablate_neurons' positions -> None (every token), ("every", [p]) or ("rows", [list of ints or None per row])."""
    if positions is None:
        return None
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    one = _int(positions, "positions")
    if one is not None:
        return "every", [one]
    if isinstance(positions, np.ndarray):
        if positions.ndim > 2:
            raise ValueError(f"positions must be one int, or one entry per batch row; got an array of shape "
                             f"{positions.shape}")
        positions = list(positions)
    try:
        positions = list(positions)
    except TypeError:
        raise TypeError(f"positions must be None, an int, or one entry per batch row (int, list of ints or None); "
                        f"got {type(positions).__name__} {positions!r}") from None
    return "rows", [None if p is None else _ints(p, f"positions for row {r}") for r, p in enumerate(positions)]


def _row_positions(parsed, batch: int, seq: int) -> list[list[int] | None]:
    """Per-row token indices to edit (None = all tokens of that row; [] = leave it alone); checks the range."""
    if parsed is None:
        return [None] * batch
    kind, value = parsed
    if kind == "every":
        rows = [value] * batch
    else:
        if len(value) != batch:
            raise ValueError(f"positions has {len(value)} entries but the batch has {batch} rows: give one entry "
                             f"per row (an int, a list of ints, or None to leave the row alone), or one int for all")
        rows = [[] if p is None else p for p in value]
    for r, pos in enumerate(rows):
        bad = [p for p in pos if not 0 <= p < seq]
        if bad:
            raise PositionError(f"ablate_neurons: row {r}: position {bad[0]} is outside the sequence of {seq} tokens "
                                f"(valid 0..{seq - 1}; negative positions are not allowed)")
    return rows


@contextmanager
def ablate_neurons(model, layer: int, neurons, positions=None, mode: str = "zero", values=None,
                   site: str = "post", seed: int = 0, verbose: bool = True):
    """Replace chosen MLP neurons' values during forward passes inside the `with` block.

    neurons: boolean mask [n_neurons] or indices. positions: None (every token),
    an int (that token in every row), or one entry per batch row (int, list of ints,
    or None to leave the row alone); lists, numpy arrays and tensors all work. Each
    position must lie in 0..seq_len-1, checked when the forward pass runs (an error
    names the row). mode: "zero"; "mean" (values: [n_neurons] mean
    over a stimulus set); "resample" (values: [n_samples, n_neurons], one random
    sample per edited token, seeded). site "post" edits after the nonlinearity
    (for GELU, zeroing "pre" gives the same result, since GELU(0) = 0).
    One entry per row addresses the rows of each forward pass run inside the block, so run
    your own batch there: mlp_activations and masked_logits, which re-order texts into their
    own batches, refuse it (an error), and logits_at keeps your order. A Trace on the same module
    sees the edited values whichever `with` came first (hooks.Trace).
    """
    layer = check_layer(model, layer)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    width = n_neurons(model, layer)
    idx = neuron_index(neurons, width, layer)
    parsed = _parse_positions(positions)
    name = mlp_module_name(model, layer, site)             # checks site
    if mode in ("mean", "resample"):
        if values is None:
            raise ValueError(f"mode={mode!r} needs `values` (mean: [{width}], resample: [n_samples, {width}])")
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu()
        values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
        want = (width,) if mode == "mean" else (None, width)
        if values.ndim != len(want) or values.shape[-1] != width:
            raise ValueError(f"mode={mode!r}: values must have shape {want}, got {tuple(values.shape)}")
        if mode == "resample" and values.shape[0] == 0:
            raise ValueError(f"mode='resample': values has no samples (shape {tuple(values.shape)}); give "
                             f"[n_samples >= 1, {width}] activations to draw from")
    if idx.numel() == 0:
        if verbose:
            print(f"ablate_neurons: the neuron set for layer {layer} is empty, so nothing is ablated.")
        yield
        return
    gen = torch.Generator().manual_seed(seed)

    def edit(out, module):
        rows = _row_positions(parsed, out.shape[0], out.shape[1])
        out = out.clone()
        sel = idx.to(out.device)
        for r, pos in enumerate(rows):
            if pos == []:
                continue
            tok = torch.arange(out.shape[1]) if pos is None else torch.tensor(pos, dtype=torch.long)
            if mode == "zero":
                new = torch.zeros(len(tok), len(sel))
            elif mode == "mean":
                new = values[idx].expand(len(tok), -1)
            else:
                new = values[torch.randint(values.shape[0], (len(tok),), generator=gen)][:, idx]
            out[r, tok.to(out.device)[:, None], sel[None, :]] = new.to(out)
        return out

    edit.per_row = parsed is not None and parsed[0] == "rows"   # readers that re-batch refuse it (hooks)
    with Trace(model, name, retain_output=False, edit_output=edit):
        yield
