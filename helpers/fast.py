"""Ablation effects for many neuron sets at once, without re-running the layers below the lesion.

    ablation_logit_diffs(model, tok, texts, positions, layer, neuron_sets, target, foil, ...)
                                     -> [n_sets, n_texts] logit(target) - logit(foil), each set ablated
    clean_logit_diffs(model, tok, texts, positions, target, foil) -> [n_texts], nothing ablated
    supports_fast(model)             -> True where the fast path applies (BERT, RoBERTa, ELECTRA MLMs)

How (fast=True): texts are grouped by token length, so nothing is padded. One hooked pass per
group runs layers 0..layer and stops; it keeps the residual stream leaving `layer` and the MLP
input at each read position. Each neuron set changes only that one token, so every set re-runs
just the layers above `layer`, many sets stacked along the batch dimension. In the first block
above, every other token sees the change only through its attention weight on the read token, so
its attention, LayerNorm and MLP input projection are rebuilt from vectors computed once per text
(exact algebra: the note above _clean_next); only the MLP's nonlinearity and output projection run per
token and set. The last block computes its query, MLP and the MLM head for the read token only
(folding the key/value projections into that one query instead of projecting every token), and
the head computes the logits of `target` and `foil` only. fast=False does the same measurement
the straightforward way (helpers.lesion.ablate_neurons + a full forward per set);
tests/test_fast.py checks that the two agree. Other architectures (DistilBERT, GPT-2, gated MLPs such as
Llama's) always take the fast=False path, and the first call for a kind of model says so (a warning).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.activations import gelu

from . import _args
from .arch import DEFAULT_SITE, blocks, check_layer, check_lengths, check_site, is_gated, model_device, n_neurons
from .hooks import StopForward, eval_mode, hooks_attached
from .lesion import ablate_neurons, check_values
from .readout import logits_at, word_ids
from .stimuli import model_text

FAST_TYPES = ("bert", "roberta", "electra")
FAST_MODES = ("zero", "mean")
TEXTS_PER_GROUP = 64          # at most this many texts (all of one token length) are cached together
MEMORY_BUDGET = 256 * 2**20   # bytes for the widest tensor of one chunk (the MLP hidden layer) on a GPU
CPU_BUDGET = 64 * 2**20       # the same on a CPU: a chunk's [rows, tokens, d] temporaries then stay under
                              # glibc's 32 MB mmap threshold and are reused, not page-faulted in afresh
                              # (bert-base null: 2.5x fewer page faults, 4-8 % less time than 256 MB)
BASIS_BUDGET = 256 * 2**20    # bytes for the per-token vectors that block L+1 keeps for a group of texts
TILE_BYTES = 8 * 2**20        # the [rows, n_neurons] hidden-layer tile of block L+1, small enough for the cache
F_TILES = 4                   # block L+1's per-text-and-set vectors F_h: computed for this many tiles' sets at once


# --- public API --------------------------------------------------------------------------------

def supports_fast(model) -> bool:
    """True when `model` is a BERT-style masked LM whose layers the fast path can re-run piecewise."""
    return slow_reason(model) is None


def slow_reason(model) -> str | None:
    """Why the fast path does not apply to `model` (None when it does)."""
    cfg = model.config
    if is_gated(model):
        return (f"it is a {cfg.model_type} model with gated MLPs, whose neurons sit at down_proj's input (the fast "
                f"path knows {', '.join(FAST_TYPES)} masked LMs)")
    if cfg.model_type not in FAST_TYPES or getattr(cfg, "is_decoder", False):
        return f"it is a {cfg.model_type} model (the fast path knows {', '.join(FAST_TYPES)} masked LMs)"
    if getattr(cfg, "add_cross_attention", False) or getattr(cfg, "chunk_size_feed_forward", 0):
        return "its blocks use cross-attention or chunked feed-forward"
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"its position embeddings are {cfg.position_embedding_type!r}, not absolute"
    if _head(model) is None:
        return "its masked-LM head is not one the fast path knows"
    try:
        lay = blocks(model)[0]
        sa = lay.attention.self
        missing = [a for a in ("query", "key", "value", "num_attention_heads", "attention_head_size")
                   if not hasattr(sa, a)]
        missing += [a for a in ("intermediate", "output") if not hasattr(lay, a)]
    except (AttributeError, IndexError, LookupError) as e:
        return f"its blocks are not laid out as BERT's ({e})"
    return f"its self-attention lacks {', '.join(missing)}" if missing else None


def _scaling(sa) -> float:
    """The attention scale 1/sqrt(head size): transformers 5 stores it as `scaling`, 4.x computes it."""
    scale = getattr(sa, "scaling", None)
    return float(scale) if scale is not None else sa.attention_head_size ** -0.5


def clean_logit_diffs(model, tokenizer, texts: Sequence[str], positions, target: str, foil: str) -> np.ndarray:
    """logit(target) - logit(foil) at token positions[i] of texts[i], no ablation: array [n_texts]."""
    texts, positions = _check_texts(model, tokenizer, texts, positions)
    out = np.empty(len(texts), dtype=np.float32)
    with torch.no_grad(), eval_mode(model):
        for group in _groups(tokenizer, texts, TEXTS_PER_GROUP):
            lg = logits_at(model, tokenizer, [texts[i] for i in group], [[positions[i]] for i in group],
                           [target, foil])
            out[group] = lg[:, 0, 0] - lg[:, 0, 1]
    return out


def ablation_logit_diffs(model, tokenizer, texts: Sequence[str], positions, layer: int, neuron_sets,
                         target: str, foil: str, mode: str = "zero", values=None, site: str = DEFAULT_SITE,
                         batch_size: int | None = None, fast: bool = True) -> np.ndarray:
    """logit(target) - logit(foil) at positions[i] of texts[i] with each neuron set ablated: [n_sets, n_texts].

    texts: n sentences; positions: one entry per text, one token index each (an int, or a one-element
    list as mask_positions gives for one [MASK]; special tokens counted, as in stimuli.target_positions).
    The set is ablated ONLY at that token, at the MLP of `layer` (site "pre", the default, before the
    nonlinearity; "post" after it).
    neuron_sets: a list of sets, each a boolean mask [n_neurons] or an index array; or a 2-D bool
    array [n_sets, n_neurons]; or a 2-D int array [n_sets, k] (k indices per set).
    mode: "zero", or "mean" with values [n_neurons] (as in helpers.lesion.ablate_neurons).
    batch_size: sequences (sets x texts) per forward chunk; None picks one from a memory budget.
    fast: False computes the same numbers the straightforward way (a full hooked forward per set).
    Where the fast path does not apply (another architecture, hooks attached) the call says so once
    (a warning) and takes the fast=False path. Runs in eval mode on the model's device.
    """
    layer = check_layer(model, layer)
    if mode not in FAST_MODES:
        raise ValueError(f"mode must be one of {FAST_MODES}, got {mode!r} (resample: use lesion.ablate_neurons)")
    check_site(site)
    width = n_neurons(model, layer)
    masks = _args.neuron_sets(neuron_sets, width, layer)
    values = check_values(mode, values, width)
    values = None if values is None else values.numpy()
    texts, positions = _check_texts(model, tokenizer, texts, positions)
    ids = word_ids(tokenizer, [target, foil])
    batch_size = _args.positive_int(batch_size, "batch_size", allow_none=True)
    with torch.no_grad(), eval_mode(model):
        if not fast or _slow_said(model) or _hooked(model):
            return _slow(model, tokenizer, texts, positions, layer, masks, target, foil, mode, values, site)
        out = np.empty((len(masks), len(texts)), dtype=np.float32)
        shared: dict = {}
        for group in _groups(tokenizer, texts, lambda n: _texts_per_group(model, layer, n)):
            out[:, group] = _fast_group(model, tokenizer, [texts[i] for i in group],
                                        [positions[i] for i in group], layer, masks, ids, mode, values,
                                        site, batch_size, shared)
    return out


_SAID: set = set()


def _slow_said(model) -> bool:
    """True when the fast path does not apply; the first time for a kind of model, a warning says why and
    what it costs (a null then takes one full forward pass per neuron set)."""
    why = slow_reason(model)
    if why is not None and (model.config.model_type, why) not in _SAID:
        _SAID.add((model.config.model_type, why))
        warnings.warn(f"the fast null does not apply to this model because {why}: ablation_logit_diffs runs one "
                      f"full forward pass per neuron set (fast=False), which is 10-40x slower on a BERT-size "
                      f"model; use fewer draws if that is too slow", stacklevel=3)
    return why is not None


def _hooked(model) -> bool:
    """True (with a warning) when hooks are attached to the model: the fast path rebuilds blocks from
    their weights instead of calling them, so it would skip those hooks; the slow path runs them.
    Hooks that only read (a function with `observe_only = True`, as the bench's timers, and transformers'
    inert output-capturing hooks) are let through; any other hook, a library's included, is honoured."""
    found = hooks_attached(model, observers=False, libraries=True)
    if found:
        names = ", ".join(sorted({n for n, _ in found})[:4]) + (", ..." if len(found) > 4 else "")
        warnings.warn(f"hooks are attached to {names}: ablation_logit_diffs runs one full forward per set "
                      f"(fast=False), because the fast path would skip them", stacklevel=3)
    return bool(found)


def _texts_per_group(model, layer: int, n: int) -> int:
    """Texts of n tokens cached together: TEXTS_PER_GROUP, fewer where block L+1's per-token vectors
    (n x (heads + 2) x n_neurons floats per text, see _clean_next) would pass BASIS_BUDGET."""
    layers = blocks(model)
    if layer + 1 >= len(layers) - 1:
        return TEXTS_PER_GROUP
    nxt = layers[layer + 1]
    per_text = n * (nxt.attention.self.num_attention_heads + 2) * nxt.intermediate.dense.out_features * 4
    return max(1, min(TEXTS_PER_GROUP, BASIS_BUDGET // per_text))


# --- the straightforward reference -------------------------------------------------------------

def _slow(model, tokenizer, texts, positions, layer, masks, target, foil, mode, values, site) -> np.ndarray:
    """One full forward of all texts per set, the set ablated by helpers.lesion.ablate_neurons."""
    out = np.empty((len(masks), len(texts)), dtype=np.float32)
    # a tokenizer without a pad token (GPT-2) cannot batch: one text per forward
    batches = [list(range(len(texts)))] if tokenizer.pad_token is not None else [[i] for i in range(len(texts))]
    for k, m in enumerate(masks):
        for b in batches:
            with ablate_neurons(model, layer, m, positions=[positions[i] for i in b], mode=mode, values=values,
                                site=site, verbose=False):
                lg = logits_at(model, tokenizer, [texts[i] for i in b], [[positions[i]] for i in b], [target, foil])
            out[k, b] = lg[:, 0, 0] - lg[:, 0, 1]
    return out


# --- the fast path -----------------------------------------------------------------------------

@dataclass
class _Group:
    """What one group of equal-length texts keeps from its clean pass (shapes: B texts, n tokens, d, W)."""

    layers: torch.nn.ModuleList
    layer: int
    pos: torch.Tensor           # [B] the read token of each text
    keep: torch.Tensor          # [B, n] bool: real tokens
    cache: dict                 # block `layer`'s inputs and outputs (_clean_pass)
    a_p: torch.Tensor           # [B, d] MLP input at the read token
    post_p: torch.Tensor        # [B, W] clean MLP hidden layer there
    fill: torch.Tensor          # [W] the post-nonlinearity value an ablated neuron gets
    qkv: list | None = None     # block L+1's clean queries, keys, values
    clean_next: dict | None = None   # block L+1's per-token vectors (_clean_next), where they apply

    @property
    def last(self) -> int:
        return len(self.layers) - 1


def _fast_group(model, tokenizer, texts, positions, layer, masks, ids, mode, values, site, batch_size, shared):
    """[n_sets, len(texts)] for one group of texts of one token length."""
    device = model_device(model)
    enc = tokenizer(list(texts), return_tensors="pt", padding=True).to(device)
    g = _group(model, enc, torch.tensor(positions, device=device), layer, mode, values, site, shared)
    B, n = g.keep.shape
    masks_t = torch.as_tensor(masks, device=device)
    per_seq = n * max(g.post_p.shape[1], g.a_p.shape[-1] * 4) * 4    # bytes of the widest activation per sequence
    budget = CPU_BUDGET if device.type == "cpu" else MEMORY_BUDGET
    sets_per_chunk = max(1, (batch_size or max(B, budget // per_seq)) // B)
    out = np.empty((len(masks), B), dtype=np.float32)
    for s0 in range(0, len(masks), sets_per_chunk):
        m = masks_t[s0: s0 + sets_per_chunk]                 # [K, W]
        out[s0: s0 + len(m)] = _logit_diff(model, _read_token(g, m), ids).reshape(len(m), B).float().cpu().numpy()
    return out


def _group(model, enc, pos, layer, mode, values, site, shared) -> _Group:
    """One hooked pass through layers 0..layer (stopped there), and what block L+1 needs from it."""
    B, n = enc["input_ids"].shape
    keep = enc["attention_mask"].bool() if "attention_mask" in enc else torch.ones(B, n, dtype=torch.bool,
                                                                                   device=pos.device)
    layers = blocks(model)
    lay = layers[layer]
    cache = _clean_pass(model, enc, lay)
    a_p = cache["attn_out"][torch.arange(B, device=pos.device), pos]
    post_p = lay.intermediate.intermediate_act_fn(lay.intermediate.dense(a_p))
    fill = torch.zeros(post_p.shape[1], device=pos.device) if mode == "zero" else torch.as_tensor(values,
                                                                                                   device=pos.device)
    if site == "pre":
        fill = lay.intermediate.intermediate_act_fn(fill)    # the post value a set neuron gets
    g = _Group(layers, layer, pos, keep, cache, a_p, post_p, fill.to(post_p.dtype))
    if layer < g.last:
        nxt, h_L = layers[layer + 1], cache["out"]
        g.qkv = [_heads(nxt, getattr(nxt.attention.self, w)(h_L)) for w in ("query", "key", "value")]
        # block L+1 at every token via _next_layer_all where it applies (no padding, more blocks above)
        if layer + 1 < g.last and n > 1 and bool(keep.all()):
            g.clean_next = _clean_next(nxt, h_L, pos, g.qkv, shared)
    return g


def _read_token(g: _Group, m: torch.Tensor) -> torch.Tensor:
    """The final hidden state at each text's read token with each of the K sets m [K, W] ablated: [K*B, d]."""
    K, B = m.shape[0], g.a_p.shape[0]
    lay = g.layers[g.layer]
    post = torch.where(m[:, None, :], g.fill, g.post_p[None])                  # [K, B, W]
    x_p = lay.output(post.reshape(K * B, -1), g.a_p.repeat(K, 1))              # [N, d] residual at the read token
    if g.layer == g.last:
        return x_p
    rows, rpos = torch.arange(B, device=m.device).repeat(K), g.pos.repeat(K)
    nxt = g.layers[g.layer + 1]
    if g.clean_next is not None:
        x_p = _next_layer_all(nxt, g.clean_next, x_p, K)
    else:
        x_p = _next_layer(nxt, g.cache["out"], x_p, g.qkv, K, rows, rpos, g.keep, only_read=(g.layer + 1 == g.last))
    if g.layer + 1 == g.last:
        return x_p
    hid = x_p
    args, kwargs = _repeat_inputs(g.cache["args"], g.cache["kwargs"], K, B)
    for j in range(g.layer + 2, g.last):
        hid = _as_tensor(g.layers[j](hid, *args, **kwargs))
    return _read_layer(g.layers[g.last], hid, rpos, g.keep.repeat(K, 1))


def _clean_pass(model, enc, lay) -> dict:
    """Run the model up to and including block `lay`; keep its inputs, attention output and output."""
    box: dict = {}

    def grab_inputs(module, args, kwargs):
        box["args"], box["kwargs"] = args, kwargs

    def grab_attn(module, args, output):
        box["attn_out"] = _as_tensor(output)

    def grab_out(module, args, output):
        box["out"] = _as_tensor(output)
        raise StopForward("fast._clean_pass")

    handles = [lay.register_forward_pre_hook(grab_inputs, with_kwargs=True),
               lay.attention.register_forward_hook(grab_attn),
               lay.register_forward_hook(grab_out)]
    try:
        model(**enc)
    except StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    args, kwargs = box["args"], dict(box["kwargs"])
    if not args:
        args = (kwargs.pop("hidden_states"),)
    # everything the block was called with except the hidden states (mask, cross-attn slots, ...)
    box["args"], box["kwargs"] = tuple(args[1:]), kwargs
    return box


def _repeat_inputs(args, kwargs, K, B):
    """The block's extra inputs with every per-text tensor repeated for K stacked sets."""
    def rep(x):
        if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == B:
            return x.repeat(K, *([1] * (x.dim() - 1)))
        return x
    return tuple(rep(a) for a in args), {k: rep(v) for k, v in kwargs.items()}


def _heads(lay, x):
    """[..., n, d] -> [..., H, n, dh] for the block's self-attention."""
    sa = lay.attention.self
    return x.view(*x.shape[:-1], sa.num_attention_heads, sa.attention_head_size).transpose(-3, -2)


def _merge(x):
    """[N, H, n, dh] -> [N, n, H*dh]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def _attend(lay, q, k, v, keep):
    """Scaled dot-product attention with padding keys masked (keep: [N, n] bool)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :],
                                          scale=_scaling(lay.attention.self))


def _next_layer(lay, h_L, x_p, qkv, K, rep, rpos, keep, only_read):
    """The block after the lesion: its input differs from the clean one only at the read token.

    Queries/keys/values of the other tokens are the clean ones (qkv, [B, H, n, dh] each).
    only_read: this is the last block, so return the read token's output [N, d] only;
    otherwise return the block's full output [N, n, d].
    """
    sa = lay.attention.self
    N = x_p.shape[0]
    idx = torch.arange(N, device=x_p.device)
    new = [_heads(lay, getattr(sa, w)(x_p)[:, None, :])[:, :, 0] for w in ("query", "key", "value")]  # [N, H, dh]
    kv = []
    for clean, fresh in zip(qkv[1:], new[1:]):
        t = clean.repeat(K, 1, 1, 1)
        t[idx, :, rpos] = fresh
        kv.append(t)
    keep = keep.repeat(K, 1)
    if only_read:
        ctx = _attend(lay, new[0][:, :, None], kv[0], kv[1], keep)[:, :, 0].reshape(N, -1)
        a = lay.attention.output(ctx, x_p)
        return lay.output(lay.intermediate(a), a)
    q = qkv[0].repeat(K, 1, 1, 1)
    q[idx, :, rpos] = new[0]
    hid = h_L.repeat(K, 1, 1)
    hid[idx, rpos] = x_p
    a = lay.attention.output(_merge(_attend(lay, q, kv[0], kv[1], keep)), hid)
    return lay.output(lay.intermediate(a), a)


# --- the block after the lesion, at every token ---------------------------------------------------
#
# A set changes the residual stream entering block L+1 at the read token m only. For any other
# token t, in each head h the only change is the weight on m and the value there: with
# cbar_th = attention output of t over the tokens s != m (clean) and p'_th = the new weight on m,
#     o'_th = (1 - p'_th) cbar_th + p'_th v'_mh,    p'_th = sigmoid(q_th . k'_mh * scale - logsumexp_{s != m})
# so the residual before the first LayerNorm is y_t = base_t + sum_h p'_th (V'_h - U_th), with
# U_th = W_O,h cbar_th and base_t = h_t + b_O + sum_h U_th clean, V'_h = W_O,h v'_mh per set. The MLP
# input projection of LayerNorm(y_t) is then a combination of vectors computed once per text:
#     W_in LN(y_t) + b_in = (1/sigma_t) [E_t0 + sum_h p'_th (F_h + E_th)] - (mu_t/sigma_t) E_t,H+1 + c
# with E_t0 = W~ base_t, E_th = -W~ U_th, E_t,H+1 = W~ 1 (all per token, clean), F_h = W~ W_O,h v'_mh
# (per text and set), W~ = W_in diag(gamma_1), c = W_in beta_1 + b_in; mu_t, sigma_t come from y_t.
# Per set, that replaces the attention, W_O and W_in products at every token (tokens x d x (d + W)
# multiply-adds) by (H + 2) x W per token plus H x dh x W per text.
# The hidden layer (GELU, W_out) still runs at every token; it is computed in tiles small enough to
# stay in cache. The read token itself (new query, new residual) is computed directly.

def _clean_next(lay, h_L, pos, qkv, shared: dict) -> dict:
    """What block L+1 needs from the clean run, computed once per group of texts (see above).
    shared: a dict kept across the groups of one call, for the products of weights alone."""
    sa = lay.attention.self
    H, dh = sa.num_attention_heads, sa.attention_head_size
    B, n, d = h_L.shape
    q, k, v = qkv                                                # [B, H, n, dh]
    rows = torch.arange(B, device=h_L.device)
    s = torch.matmul(q, k.transpose(-1, -2)) * _scaling(sa)         # [B, H, n, n]
    s[rows, :, :, pos] = float("-inf")                            # every query's score on the read token
    lse = torch.logsumexp(s, -1).transpose(1, 2).contiguous()     # [B, n, H] over s != m
    cbar = torch.matmul(torch.softmax(s, -1), v)                  # [B, H, n, dh]
    wo = lay.attention.output.dense
    wo_h = wo.weight.view(d, H, dh)
    U = torch.einsum("bhte,dhe->bthd", cbar, wo_h)                # [B, n, H, d]
    base = h_L + wo.bias + U.sum(2)                               # [B, n, d]
    ln1 = lay.attention.output.LayerNorm
    w_in = lay.intermediate.dense
    wt = w_in.weight * ln1.weight                                 # W~ [W, d]
    width = wt.shape[0]
    if not shared:
        shared["A_T"] = torch.einsum("wd,dhe->hew", wt, wo_h).contiguous()    # (W~ W_O,h)^T  [H, dh, W]
        shared["wo_T"] = wo_h.permute(1, 2, 0).contiguous()                    # W_O,h^T  [H, dh, d]
        shared["c"] = w_in.weight @ ln1.bias + w_in.bias                       # [W]
    E = torch.empty(B, n, H + 2, width, dtype=h_L.dtype, device=h_L.device)
    E[:, :, 0] = torch.matmul(base, wt.T)
    # E_th = -W~ U_th = -(W~ W_O,h) cbar_th: dh (not d) multiply-adds per output
    E[:, :, 1:H + 1] = torch.bmm(cbar.transpose(0, 1).reshape(H, B * n, dh), shared["A_T"]).neg_() \
        .view(H, B, n, width).permute(1, 2, 0, 3)
    E[:, :, H + 1] = wt.sum(1)
    return dict(q=q, k=k, v=v, lse=lse, U=U, base=base, E=E.view(B * n, H + 2, width), pos=pos, rows=rows,
                **shared)


def _next_layer_all(lay, clean, x_p, K):
    """Output of block L+1 at every token, [K*B, n, d] (rows set-major), given the new residual
    stream at the read token x_p [K*B, d]. Equal to running the block (see the note above)."""
    sa = lay.attention.self
    H, dh = sa.num_attention_heads, sa.attention_head_size
    q, k, v, U, base, E, A_T = (clean[x] for x in ("q", "k", "v", "U", "base", "E", "A_T"))
    pos, rows = clean["pos"], clean["rows"]
    B, n, d = base.shape
    width = E.shape[-1]
    wo = lay.attention.output.dense
    ln1 = lay.attention.output.LayerNorm
    qm, km, vm = (getattr(sa, w)(x_p).view(K, B, H, dh) for w in ("query", "key", "value"))

    # every other token's new weight on the read token, per head: p'_th  [K, B, n, H]
    p = torch.sigmoid(torch.einsum("bhte,kbhe->kbth", q, km) * _scaling(sa) - clean["lse"])
    vm_h = vm.permute(2, 0, 1, 3).contiguous()                                              # [H, K, B, dh]
    vn = torch.bmm(vm_h.view(H, K * B, dh), clean["wo_T"]).view(H, K, B, d).permute(1, 2, 0, 3)  # V'_h [K, B, H, d]

    # the read token: its new query over every key, with its own key and value replaced
    s = torch.einsum("kbhe,bhte->kbht", qm, k)
    s[:, rows, :, pos] = (qm * km).sum(-1).transpose(0, 1)       # [B, K, H] -> its own column
    w = torch.softmax(s * _scaling(sa), -1)
    ctx = torch.einsum("kbht,bhte->kbhe", w, v)
    ctx += w[:, rows, :, pos].transpose(0, 1)[..., None] * (vm - v[rows, :, pos][None])
    y_m = wo(ctx.reshape(K, B, H * dh)) + x_p.view(K, B, d)                                # [K, B, d]
    a_m = F.layer_norm(y_m, (d,), ln1.weight, ln1.bias, ln1.eps)
    pre_m = lay.intermediate.dense(a_m)                                                     # [K, B, W]

    out = torch.empty(K, B, n, d, dtype=x_p.dtype, device=x_p.device)
    bt, kt, kf = _tile_sizes(K, B, n, H, width, x_p.element_size(), x_p.device.type == "cpu")
    for b0 in range(0, B, bt):
        bs = slice(b0, min(B, b0 + bt))
        nb = bs.stop - b0
        r = torch.arange(nb, device=x_p.device)
        for f0 in range(0, K, kf):
            fs = slice(f0, min(K, f0 + kf))
            f = torch.bmm(vm_h[:, fs, bs].reshape(H, -1, dh), A_T).view(H, fs.stop - f0, nb, width)
            for k0 in range(f0, fs.stop, kt):
                ks = slice(k0, min(fs.stop, k0 + kt))
                _tile(lay, _Tile(clean["c"], p[ks, bs], vn[ks, bs], U[bs], base[bs], E[b0 * n: bs.stop * n],
                                 pos[bs], r, y_m[ks, bs], pre_m[ks, bs], f[:, k0 - f0: ks.stop - f0]), out[ks, bs])
    return out.view(K * B, n, d)


def _tile_sizes(K: int, B: int, n: int, H: int, width: int, itemsize: int, cpu: bool) -> tuple[int, int, int]:
    """(bt, kt, kf) for K sets x B texts of n tokens: tiles of kt sets x bt texts whose [rows, width]
    hidden layer (at most TILE_BYTES) stays in the CPU's cache; F_h computed for kf sets at a time
    (a multiple of kt, at most F_TILES tiles' worth: its product has an inner size of only dh, and a
    taller one runs faster; 4 tiles took the whole null 5-7 % less time than 1 here). On a GPU the
    whole chunk is one tile (it fits MEMORY_BUDGET; fewer launches)."""
    one = n * width * itemsize
    tile = TILE_BYTES if cpu else K * B * one
    bt = max(1, min(B, tile // (K * one)))
    kt = K if bt > 1 else max(1, min(K, tile // one))
    kf = max(kt, min(K, F_TILES * tile // (H * width * itemsize) // kt * kt))
    return bt, kt, kf


@dataclass
class _Tile:
    """Block L+1's inputs for one tile of nk sets x nb texts of n tokens (see the note above _clean_next)."""

    c: torch.Tensor             # [W] W_in beta_1 + b_in
    pt: torch.Tensor            # [nk, nb, n, H] every token's new attention weight p' on the read token
    vn: torch.Tensor            # [nk, nb, H, d] V'_h, the read token's new value through W_O,h
    U: torch.Tensor             # [nb, n, H, d] clean W_O,h cbar_th
    base: torch.Tensor          # [nb, n, d] clean base_t
    E: torch.Tensor             # [nb*n, H+2, W] per-token vectors E_t
    pos: torch.Tensor           # [nb] the read token of each text
    r: torch.Tensor             # [nb] arange(nb)
    y_m: torch.Tensor           # [nk, nb, d] the read token's residual before LayerNorm
    pre_m: torch.Tensor         # [nk, nb, W] the read token's MLP pre-activation
    f: torch.Tensor             # [H, nk, nb, W] F_h


def _tile(lay, t: _Tile, out: torch.Tensor) -> None:
    """Block L+1's output for one tile, written into out [nk, nb, n, d]."""
    pt, vn, U, base, E, pos, r, c = t.pt, t.vn, t.U, t.base, t.E, t.pos, t.r, t.c
    y_m, pre_m, f = t.y_m, t.pre_m, t.f
    ln1 = lay.attention.output.LayerNorm
    nk, nb, n, H = pt.shape
    d, width = base.shape[-1], E.shape[-1]
    # residual stream before LayerNorm: y_t = base_t + sum_h p'_th (V'_h - U_th)
    y = torch.matmul(pt, vn)
    y -= torch.einsum("kbth,bthd->kbtd", pt, U)
    y += base
    y[:, r, pos] = y_m
    a, mu, rstd = torch.native_layer_norm(y, (d,), ln1.weight, ln1.bias, ln1.eps)    # mu, rstd [nk, nb, n, 1]
    cq = pt * rstd                                                                      # p'/sigma
    # per text and set: c + sum_h (p'/sigma) F_h
    pre = torch.baddbmm(c, cq.reshape(nk * nb, n, H), f.reshape(H, nk * nb, width).transpose(0, 1))
    pre = pre.view(nk, nb, n, width)
    # per token: (1/sigma) E_t0 + sum_h (p'/sigma) E_th - (mu/sigma) E_t,H+1
    cp = torch.cat([rstd, cq, -mu * rstd], -1).permute(1, 2, 0, 3).reshape(nb * n, nk, H + 2)
    pre += torch.bmm(cp, E).view(nb, n, nk, width).permute(2, 0, 1, 3)
    pre[:, r, pos] = pre_m
    hidden = lay.intermediate.intermediate_act_fn(pre).view(-1, width)
    out.copy_(lay.output(hidden, a.view(-1, d)).view(nk, nb, n, d))


def _read_layer(lay, hid, rpos, keep):
    """The last block, computed for the read token only: [N, d].

    Its one query needs every token's key and value, but not as projections: per head,
    q . (W_K x_j + b_K) = (W_K^T q) . x_j + const (the constant drops out of the softmax), and
    sum_j a_j (W_V x_j + b_V) = W_V (sum_j a_j x_j) + b_V (the weights a_j sum to 1). So the
    block costs O(heads x tokens x width) per sequence instead of 2 x tokens x width^2.
    """
    sa = lay.attention.self
    N, n, d = hid.shape
    H, dh = sa.num_attention_heads, sa.attention_head_size
    x_p = hid[torch.arange(N, device=hid.device), rpos]
    q = sa.query(x_p).view(N, H, dh)
    u = torch.einsum("nhe,hed->nhd", q, sa.key.weight.view(H, dh, d))            # W_K^T q per head
    scores = torch.bmm(u, hid.transpose(1, 2)) * _scaling(sa)                       # [N, H, n]
    scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
    z = torch.bmm(torch.softmax(scores, dim=-1), hid)                             # [N, H, d]
    ctx = torch.einsum("nhd,hed->nhe", z, sa.value.weight.view(H, dh, d))
    if sa.value.bias is not None:
        ctx = ctx + sa.value.bias.view(H, dh)
    a = lay.attention.output(ctx.reshape(N, H * dh), x_p)
    return lay.output(lay.intermediate(a), a)


def _logit_diff(model, x, ids):
    """logit(ids[0]) - logit(ids[1]) from final hidden states x [N, d], computing those two logits only."""
    transform, decoder = _head(model)
    h = transform(x)
    w = decoder.weight[ids]                                   # [2, d]
    b = decoder.bias[ids] if decoder.bias is not None else torch.zeros(2, device=x.device)
    lg = h @ w.T + b
    return lg[:, 0] - lg[:, 1]


def _head(model):
    """(transform, decoder Linear) of the MLM head, or None where unknown."""
    kind = model.config.model_type
    if kind == "bert" and hasattr(model, "cls"):
        return model.cls.predictions.transform, model.cls.predictions.decoder
    if kind == "roberta" and hasattr(model, "lm_head"):
        lm = model.lm_head
        return (lambda x: lm.layer_norm(gelu(lm.dense(x)))), lm.decoder
    if kind == "electra" and hasattr(model, "generator_lm_head"):
        return model.generator_predictions, model.generator_lm_head
    return None


def _as_tensor(output):
    return output[0] if isinstance(output, (tuple, list)) else output


# --- argument checks ---------------------------------------------------------------------------

def _check_texts(model, tokenizer, texts, positions):
    """(texts with [MASK] as the tokenizer's mask token, one int position per text), or an error naming
    the text: not a string, longer than the model takes, or its position outside its tokens."""
    texts = [model_text(tokenizer, t) for t in _args.texts(texts)]
    positions = _args.one_position_per_text(positions, len(texts))
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    check_lengths(model, texts, lengths)
    _args.check_in_range([[p] for p in positions], lengths, texts)
    return texts, positions


def _groups(tokenizer, texts, size) -> list[np.ndarray]:
    """Text indices in groups of equal token length (so no padding), at most `size` per group
    (an int, or a function of the token length)."""
    lengths = np.array([len(tokenizer(t)["input_ids"]) for t in texts])
    order = np.argsort(lengths, kind="stable")
    cap = size if callable(size) else (lambda n: size)
    groups, cur = [], []
    for i in order:
        if cur and (len(cur) >= cap(int(lengths[cur[0]])) or lengths[i] != lengths[cur[0]]):
            groups.append(np.array(cur))
            cur = []
        cur.append(i)
    return groups + [np.array(cur)] if cur else groups
