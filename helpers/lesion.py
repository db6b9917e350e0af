"""Lesioning MLP neurons: replace their values during forward passes, inside a `with` block.

    ablate_neurons(model, layer, neurons, positions=None, mode="zero")   context manager
    ablation_values(model, tok, contrast, layer, mode)   replacement values for "mean" / "resample"
    neuron_index(neurons, width)                         sorted indices from a bool mask or indices
    check_values(mode, values, width)                    the values a mode needs, or an error naming the shape
    MODES = ("zero", "mean", "resample")

The hook lives exactly as long as the `with` block (hooks.Trace), so nothing leaks when a cell fails.
The sign convention for reporting a lesion is readout's: logit(expected) - logit(other), which a
lesion that works makes drop.
"""
from __future__ import annotations

import zlib
from contextlib import contextmanager

import numpy as np
import torch

from . import _args
from ._args import neuron_index
from .arch import DEFAULT_SITE, check_layer, check_site, mlp_site, n_neurons
from .capture import contrast_activations
from .hooks import Trace

MODES = ("zero", "mean", "resample")


def check_values(mode: str, values, width: int):
    """values as a float tensor of the shape `mode` needs (mean: [width], resample: [n_samples, width]), or None."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "zero":
        return None
    if values is None:
        raise ValueError(f"mode={mode!r} needs `values` (mean: [{width}], resample: [n_samples, {width}]; "
                         f"see ablation_values)")
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    values = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    want = (width,) if mode == "mean" else (None, width)
    if values.ndim != len(want) or values.shape[-1] != width:
        raise ValueError(f"mode={mode!r}: values must have shape {want}, got {tuple(values.shape)}")
    if mode == "resample" and values.shape[0] == 0:
        raise ValueError(f"mode='resample': values has no samples (shape {tuple(values.shape)}); give "
                         f"[n_samples >= 1, {width}] activations to draw from")
    bad = ~torch.isfinite(values)
    if bad.any():
        at = [int(i) for i in torch.nonzero(bad)[0]]
        where = f"neuron {at[-1]}" + (f" of sample {at[0]}" if len(at) == 2 else "")
        raise ValueError(f"mode={mode!r}: values holds {int(bad.sum())} NaN or infinite entr"
                         f"{'y' if int(bad.sum()) == 1 else 'ies'} (the first at {where}: "
                         f"{values[tuple(at)].item()}); they would make every logit NaN. Give finite values "
                         f"(ablation_values computes them from the contrast's activations)")
    return values


def _rows(positions, same_positions, batch: int, seq: int) -> list[list[int] | None]:
    """Per batch row: the token indices to edit (None = every token); checks their range."""
    if positions is None and same_positions is None:
        return [None] * batch
    if positions is not None and len(positions) != batch:
        raise ValueError(f"positions has {len(positions)} entries but the batch has {batch} rows: give one entry "
                         f"per row (an int or a list of ints; [] leaves a row alone), or same_positions=... for "
                         f"the same tokens in every row")
    rows = positions if positions is not None else [same_positions] * batch
    _args.check_in_range(rows, [seq] * batch, [], what="ablate_neurons: row")
    return rows


class _Inputs:
    """A pre-forward hook on the whole model that keeps each pass's token ids (for resample draws)."""
    observe_only = True

    def __init__(self):
        self.ids = self.mask = None

    def __call__(self, module, args, kwargs):
        self.ids = kwargs.get("input_ids", args[0] if args else None)
        self.mask = kwargs.get("attention_mask")


def _draw(seed: int, inputs: _Inputs, row: int, pos: int, n: int) -> int:
    """The resample donor of token `pos` of batch row `row`: a function of (seed, the row's text, pos), so
    the same text gets the same draw however the calls are batched or grouped."""
    ids = inputs.ids[row] if inputs.ids is not None else torch.tensor([row])
    if inputs.mask is not None:
        ids = ids[inputs.mask[row].bool()]
    key = zlib.crc32(ids.detach().cpu().numpy().astype(np.int64).tobytes())
    return int(np.random.default_rng([seed, key, pos]).integers(n))


def _edit(idx: torch.Tensor, mode: str, values, positions, same_positions, seed: int, inputs: _Inputs):
    """The Trace edit function: set neurons `idx` at the chosen tokens of each row."""
    def edit(out, module):
        rows = _rows(positions, same_positions, out.shape[0], out.shape[1])
        out = out.clone()
        sel = idx.to(out.device)
        for r, pos in enumerate(rows):
            tok = list(range(out.shape[1])) if pos is None else pos
            if not tok:
                continue
            if mode == "zero":
                new = torch.zeros(len(tok), len(sel))
            elif mode == "mean":
                new = values[idx].expand(len(tok), -1)
            else:
                new = values[[_draw(seed, inputs, r, p, values.shape[0]) for p in tok]][:, idx]
            out[r, torch.tensor(tok, device=out.device)[:, None], sel[None, :]] = new.to(out)
        return out

    edit.per_row = positions is not None    # readers that re-batch refuse it (hooks.refuse_row_edits)
    return edit


@contextmanager
def ablate_neurons(model, layer: int, neurons, positions=None, mode: str = "zero", values=None,
                   site: str = DEFAULT_SITE, seed: int = 0, verbose: bool = True, same_positions=None):
    """Replace chosen MLP neurons' values during forward passes inside the `with` block.

    neurons: boolean mask [n_neurons] or indices. Where (the kit's one meaning of `positions`):
      positions=None (and no same_positions): every token of every row;
      positions: one entry per batch row, an int or a list of ints ([] leaves the row alone), e.g.
        mask_positions(tok, texts) for the [MASK]s of your batch; lists, arrays and tensors work;
      same_positions: the same token index (or indices) in every row.
    Each position must lie in 0..seq_len-1, checked when the forward pass runs (an error names the row).
    mode: "zero"; "mean" (values: [n_neurons]); "resample" (values: [n_samples, n_neurons], one
    sample per edited token, drawn as a function of (seed, the row's tokens, the position), so a text
    gets the same draw alone or in a batch). See ablation_values for both.
    site: "pre" (default) edits the MLP expansion layer's output before the nonlinearity, "post"
    after it; zeroing either is the same (GELU(0) = 0). Take mean/resample values at the same site.
    A gated MLP (Llama): either site edits down_proj's input, act(gate) * up (arch.mlp_site), so zeroing
    neuron j equals zeroing column j of down_proj's weight.
    Per-row positions address the rows of each forward pass run inside the block, so run your own
    batch there: mlp_activations and masked_logits, which re-order texts into their own batches,
    refuse them (an error). A Trace on the same module sees the edited values (hooks.Trace).
    """
    layer = check_layer(model, layer)
    width = n_neurons(model, layer)
    values = check_values(mode, values, width)
    idx = neuron_index(neurons, width, layer)
    if positions is not None and same_positions is not None:
        raise TypeError("give positions (one entry per batch row) or same_positions (the same tokens in every "
                        "row), not both")
    if positions is not None:
        if isinstance(positions, torch.Tensor):
            positions = positions.detach().cpu().numpy()
        if _args.as_int(positions, "positions") is not None:
            raise TypeError(f"positions={positions!r} is one int, but positions has one entry per batch row: "
                            f"write same_positions={positions} for token {positions} of every row, or "
                            f"[{positions}] for a batch of one")
        positions = [_args.as_ints(p, f"positions for row {r}") for r, p in enumerate(positions)]
    elif same_positions is not None:
        same_positions = _args.as_ints(same_positions, "same_positions")
    name, on = mlp_site(model, layer, check_site(site))    # a gated MLP: down_proj's input (on="input")
    if idx.numel() == 0:
        if verbose:
            print(f"ablate_neurons: the neuron set for layer {layer} is empty, so nothing is ablated.")
        yield
        return
    inputs = _Inputs()
    handle = model.register_forward_pre_hook(inputs, with_kwargs=True) if mode == "resample" else None
    try:
        with Trace(model, name, retain_output=False, on=on,
                   edit_output=_edit(idx, mode, values, positions, same_positions, seed, inputs)):
            yield
    finally:
        if handle is not None:
            handle.remove()


def ablation_values(model, tokenizer, contrast="him_her", layer: int = 0, mode: str = "mean",
                    site: str = DEFAULT_SITE) -> np.ndarray | None:
    """Replacement values for mean/resample ablation: MLP values at `site` at the target words of all the
    contrast's pair sentences (take them at the site you ablate).

    mode "mean": [n_neurons], the mean over both conditions; "resample": [2 * n_pairs, n_neurons], the
    a-sentences' rows first, then the b-sentences'; "zero": None. Both conditions are pooled, so the
    replacement carries no net difference between a and b. Note where the values come from: the visible
    target words, while the lesions write them at a [MASK].
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "zero":
        return None
    layer = check_layer(model, layer)
    a, b = contrast_activations(model, tokenizer, contrast, [layer], site=site)
    vals = np.concatenate([a[layer], b[layer]])
    return vals.mean(0) if mode == "mean" else vals
