"""The argument checks that several modules share (the only private module others may import from).

    texts(x)                            one str or a sequence of str -> non-empty list[str]
    as_int(x, what) / as_ints(x, what)  one integer / integers (int, numpy, 0-d or 1-d arrays, tensors)
    per_text_positions(positions, n, same_positions)
                                        THE meaning of `positions` in this kit: one entry per text,
                                        each an int or a list of ints -> list[list[int]]
    one_position_per_text(positions, n) -> list[int]: exactly one token per text
    check_in_range(rows, lengths, texts) PositionError naming the text whose position lies outside it
    neuron_index(neurons, width, layer) sorted unique indices from a bool mask or indices
    neuron_sets(sets, width, layer)     several neuron sets -> bool array [n_sets, width]
    positive_int(x, what)               a positive integer (batch sizes, draws)

`positions` always has one entry per text (or per batch row): `[5, 7]` for two texts means token 5 of
the first text and token 7 of the second; `[[5, 7], [3, 4]]` reads two tokens of each. "The same token
index in every text" is never spelled `positions`: it is the keyword `same_positions` (an int or a list
of ints), so a student copying a call from one notebook to another cannot change its meaning.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class PositionError(ValueError, IndexError):
    """A token position outside its text or batch row; the message names the text or row and the valid range."""


def texts(x) -> list[str]:
    """One text (a str) or a sequence of texts -> a non-empty list of str; a non-str names its index."""
    if isinstance(x, str):
        return [x]
    out = list(x)
    if not out:
        raise ValueError("no texts: give one text or a list of texts")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__} {t!r}, not a string")
    return out


def as_int(p, what: str) -> int | None:
    """p as an int if it is one integer (int, numpy or 0-d array/tensor), else None; bool/float/str is an error."""
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


def as_ints(p, what: str) -> list[int]:
    """One integer or a sequence (list, array, tensor) of integers -> list of int."""
    one = as_int(p, what)
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
        i = as_int(x, what)
        if i is None:
            raise TypeError(f"{what}: expected token positions (ints), got {type(x).__name__} {x!r}")
        out.append(i)
    return out


def per_text_positions(positions, n_texts: int, same_positions=None, what: str = "text") -> list[list[int]]:
    """`positions` (one entry per text: an int or a list of ints) or `same_positions` (the same token
    indices in every text) -> one list of token indices per text. Exactly one of the two must be given."""
    if (positions is None) == (same_positions is None):
        raise TypeError("give either positions (one entry per text, e.g. [5, 7] or mask_positions(tok, texts)) "
                        "or same_positions (the same token index or indices in every text), not both or neither")
    if same_positions is not None:
        return [as_ints(same_positions, "same_positions")] * n_texts
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    if as_int(positions, "positions") is not None:
        raise TypeError(f"positions={positions!r} is one int, but positions has one entry per {what}: write "
                        f"[{positions}] for one {what}, or same_positions={positions} for token {positions} of "
                        f"every {what}")
    try:
        entries = list(positions)
    except TypeError:
        raise TypeError(f"positions must hold one entry per {what} (an int or a list of ints); got "
                        f"{type(positions).__name__} {positions!r}") from None
    if len(entries) != n_texts:
        raise ValueError(f"positions has {len(entries)} entries but there are {n_texts} {what}s: give one entry "
                         f"per {what} (an int or a list of ints), or same_positions=... for the same tokens in all")
    return [as_ints(p, f"positions for {what} {i}") for i, p in enumerate(entries)]


def one_position_per_text(positions, n_texts: int) -> list[int]:
    """One token index per text: `positions` entries are ints or one-element lists (as mask_positions gives
    them for texts with one [MASK])."""
    rows = per_text_positions(positions, n_texts)
    for i, r in enumerate(rows):
        if len(r) != 1:
            raise ValueError(f"text {i}: give one token position per text, got {r}")
    return [r[0] for r in rows]


def check_in_range(rows: Sequence[Sequence[int]], lengths: Sequence[int], names: Sequence[str],
                   what: str = "text") -> None:
    """A PositionError naming the first text whose position lies outside its tokens (no negative indices)."""
    for i, (pos, n) in enumerate(zip(rows, lengths)):
        bad = [p for p in pos if not 0 <= p < n]
        if bad:
            name = f" {names[i]!r}" if i < len(names) else ""
            raise PositionError(f"{what} {i}{name}: position {bad[0]} is outside its {n} tokens "
                                f"(valid 0..{n - 1}; negative positions are not allowed)")


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
        return torch.as_tensor(np.flatnonzero(arr), dtype=torch.long)
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


def neuron_sets(neuron_sets, width: int, layer: int) -> np.ndarray:
    """Neuron sets as a bool array [n_sets, width]."""
    if isinstance(neuron_sets, torch.Tensor):
        neuron_sets = neuron_sets.cpu().numpy()
    if isinstance(neuron_sets, np.ndarray):
        if neuron_sets.ndim != 2:
            raise ValueError(f"neuron_sets as an array must be 2-D ([n_sets, {width}] bool or [n_sets, k] "
                             f"indices), got shape {neuron_sets.shape}; for one set pass [mask]")
        if neuron_sets.dtype == bool:
            if neuron_sets.shape[1] != width:
                raise ValueError(f"neuron_sets has shape {neuron_sets.shape}; layer {layer} has {width} neurons, "
                                 f"so a bool array must be [n_sets, {width}]")
            return neuron_sets
    sets = list(neuron_sets)
    if sets and all(isinstance(s, (int, np.integer, bool, np.bool_)) for s in sets):
        raise ValueError("neuron_sets must be a list of sets (masks or index arrays); for one set pass [mask]")
    out = np.zeros((len(sets), width), dtype=bool)
    for k, s in enumerate(sets):
        try:
            out[k, neuron_index(s, width, layer).numpy()] = True
        except (ValueError, IndexError) as e:
            raise type(e)(f"neuron set {k}: {e}") from None
    return out


def positive_int(x, what: str, allow_none: bool = False):
    """x if it is a positive integer (None too, with allow_none), else a ValueError naming `what`."""
    if x is None and allow_none:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{what} must be a positive integer{' (or None)' if allow_none else ''}, got {x!r}")
    return int(x)
