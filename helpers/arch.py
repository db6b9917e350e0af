"""What the kit knows about model families: where the MLP neurons are, how many layers, what device.

    mlp_site(model, layer, site)         Site(name, on): the module whose output (or input) holds the neurons
    mlp_module_name(model, layer, site)  dotted name of that module ("pre" / "post" the nonlinearity)
    block_module_name(model, layer)      dotted name of transformer block `layer`
    n_layers(model), n_neurons(model, layer), is_gated(model), site_label(model, site)
    check_layer(model, layer), check_site(site)   the value, or an error naming the valid choices
    default_layer(model)                 the layer the notebooks use (bert-base-uncased: 9, as in the lecture)
    max_tokens(model), check_lengths(...) the longest text a model takes
    is_causal(model), model_label(model), model_device(model)

Sites (named as TransformerLens names its hook points): "pre" is the MLP expansion layer's output
before the nonlinearity (BERT: `encoder.layer[L].intermediate.dense`, the layer the lecture hooks);
"post" is after it (BERT: `encoder.layer[L].intermediate`). DEFAULT_SITE = "pre" everywhere in the kit:
capture reads it, ablation edits it (zeroing "pre" equals zeroing "post", since GELU(0) = 0), and
mean/resample values are taken at the site where they are written back.

Gated MLPs (Llama, Mistral, Qwen, Gemma, Phi-3, ...: `mlp.gate_proj`, `mlp.up_proj`, `mlp.down_proj`, or
Phi-3's fused `mlp.gate_up_proj`) compute down_proj(act(gate(x)) * up(x)). Their neuron j is coordinate j
of down_proj's INPUT, act(gate_j) * up_j: no module outputs it, so the site is read with a forward
pre-hook on down_proj (Site.on == "input"), and there is no value before "the" nonlinearity of a
neuron: "pre" and "post" both name down_proj's input. They are found by their modules, not by a list
of model types, so any family laid out that way works (MoE layers, whose experts each have their own
down_proj, do not).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .hooks import get_module

# model_type -> (path of layer i under the base model, module giving the pre-activation,
#                module whose output is the post-activation)
MLP_SITES = {
    "bert": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "roberta": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "electra": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "distilbert": ("transformer.layer.{i}", "ffn.lin1", "ffn.activation"),
    "gpt2": ("h.{i}", "mlp.c_fc", "mlp.act"),
}
# gated MLPs: (blocks under the base model, MLP module in a block); its down_proj's input holds the neurons
GATED_BLOCKS = ("layers.{i}",)
GATED_MLPS = ("mlp", "feed_forward")
SITES = ("pre", "post")
DEFAULT_SITE = "pre"
CAUSAL_TYPES = ("gpt2",)
CAUSAL_CLASSES = ("ForCausalLM", "LMHeadModel")   # class-name endings of next-token models


class Site(NamedTuple):
    """Where a layer's MLP neurons are: module `name`'s output (on="output"), or its input (on="input",
    read with a forward pre-hook: a gated MLP's down_proj)."""

    name: str
    on: str
LECTURE_LAYER = 9          # bert-base-uncased (12 layers), as in the lecture
STANDIN_LAYER = 5          # the 6-layer stand-in: its last layer (data/models/stand-in/MODEL_CARD.md)


def n_layers(model) -> int:
    """Number of transformer blocks."""
    return int(model.config.num_hidden_layers)


def model_label(model) -> str:
    """Short name for figure titles: 'stand-in' or the hub name (always a str)."""
    return str(getattr(model, "name_or_path", "") or type(model).__name__)


def check_layer(model, layer) -> int:
    """`layer` as an int, or an error naming the valid range for this model."""
    n = n_layers(model)
    # np.array(3), torch.tensor(3): one integer
    if isinstance(layer, torch.Tensor) and layer.ndim == 0 and not layer.is_floating_point() \
            and layer.dtype != torch.bool:
        layer = layer.item()
    elif isinstance(layer, np.ndarray) and layer.ndim == 0 and np.issubdtype(layer.dtype, np.integer):
        layer = layer.item()
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be an integer 0..{n - 1}, got {layer!r}")
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} is out of range: {model_label(model)} has {n} layers, so layer must be "
                         f"0..{n - 1}")
    return int(layer)


def check_site(site) -> str:
    """`site` if it is "pre" or "post", else a ValueError saying what each means."""
    if site not in SITES:
        raise ValueError(f"site must be 'pre' (the MLP expansion layer's output, before the nonlinearity) or "
                         f"'post' (after it), got {site!r}")
    return site


def default_layer(model) -> int:
    """bert-base-uncased: 9, as in the lecture. The 6-layer stand-in: 5, its last layer, the one where its
    "her"/"him" neurons, zeroed at a [MASK], beat random neuron sets (data/models/stand-in/MODEL_CARD.md).
    Other depths: three quarters of the way up."""
    n = n_layers(model)
    if n == 12:
        return LECTURE_LAYER
    return min(n - 1, STANDIN_LAYER if n == 6 else round(0.75 * n))


def _prefix(model) -> str:
    pre = getattr(model, "base_model_prefix", "")
    return f"{pre}." if pre and hasattr(model, pre) and getattr(model, pre) is not model else ""


def _gated_mlp(block) -> str | None:
    """The name of `block`'s gated MLP (one with down_proj and gate_proj + up_proj, or gate_up_proj), or None."""
    for name in GATED_MLPS:
        mlp = getattr(block, name, None)
        if isinstance(getattr(mlp, "down_proj", None), torch.nn.Module) and (
                hasattr(mlp, "gate_up_proj") or (hasattr(mlp, "gate_proj") and hasattr(mlp, "up_proj"))):
            return name
    return None


def _gated_layout(model) -> tuple[str, str] | None:
    """(block path, MLP path) of a model whose blocks hold a gated MLP (found in its modules), or None."""
    base = getattr(model, model.base_model_prefix, model) if getattr(model, "base_model_prefix", "") else model
    for block in GATED_BLOCKS:
        layers = getattr(base, block.split(".")[0], None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers):
            name = next((n for n in map(_gated_mlp, layers) if n), None)
            if name:
                return block, name
    return None


def is_gated(model) -> bool:
    """True for a model whose MLPs are gated (Llama-style: neurons at down_proj's input)."""
    return model.config.model_type not in MLP_SITES and _gated_layout(model) is not None


def _family(model) -> tuple[str, str, str]:
    """(block path, "pre" module, "post" module) under the base model; a gated MLP's are both its down_proj."""
    kind = model.config.model_type
    if kind in MLP_SITES:
        return MLP_SITES[kind]
    gated = _gated_layout(model)
    if gated is None:
        raise NotImplementedError(
            f"no MLP site known for model_type {kind!r}{_compiled(model)}; supported: {', '.join(MLP_SITES)}, and "
            f"gated MLPs (Llama-style: layers[i].mlp.gate_proj, up_proj, down_proj, or gate_up_proj)")
    block, mlp = gated
    return block, f"{mlp}.down_proj", f"{mlp}.down_proj"


def _compiled(model) -> str:
    if isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
        return " (a torch.compile'd model: pass model._orig_mod, the model itself)"
    return ""


def mlp_site(model, layer: int, site: str = DEFAULT_SITE) -> Site:
    """Where the MLP neurons of `layer` are: Site(module name, "output" or "input").

    site "pre": before the nonlinearity (BERT: encoder.layer[L].intermediate.dense's output);
    site "post": after it (BERT: encoder.layer[L].intermediate's output).
    A gated MLP (Llama: model.layers[L].mlp): down_proj's input, act(gate) * up, for either site;
    a layer without one (a mixture of experts) is an error naming it.
    """
    block, pre, post = _family(model)
    check_site(site)
    layer = check_layer(model, layer)
    name = f"{_prefix(model)}{block.format(i=layer)}.{pre if site == 'pre' else post}"
    if model.config.model_type in MLP_SITES:
        return Site(name, "output")
    if _gated_mlp(blocks(model)[layer]) is None:
        raise NotImplementedError(f"layer {layer} of {model_label(model)} has no gated MLP with a down_proj "
                                  f"(a mixture-of-experts layer?): its neurons are not one layer the kit can hook; "
                                  f"choose a dense layer")
    return Site(name, "input")


def mlp_module_name(model, layer: int, site: str = DEFAULT_SITE) -> str:
    """Dotted name of the module whose output is the MLP's hidden layer at `layer` (mlp_site's name).

    site "pre": before the nonlinearity (BERT: encoder.layer[L].intermediate.dense);
    site "post": after it (BERT: encoder.layer[L].intermediate).
    A gated MLP: its down_proj, whose INPUT holds the neurons (hook it with a forward pre-hook; mlp_site).
    """
    return mlp_site(model, layer, site).name


def site_label(model, site: str = DEFAULT_SITE) -> str:
    """How summaries name a site: "pre-GELU" / "post-GELU", or "down_proj input" for a gated MLP."""
    return "down_proj input" if is_gated(model) else f"{check_site(site)}-GELU"


def block_module_name(model, layer: int) -> str:
    """Dotted name of transformer block `layer` (its output is the residual stream after it)."""
    return f"{_prefix(model)}{_family(model)[0].format(i=check_layer(model, layer))}"


def blocks(model) -> torch.nn.ModuleList:
    """The model's list of transformer blocks (bert.encoder.layer)."""
    return get_module(model, block_module_name(model, 0).rsplit(".", 1)[0])


def n_neurons(model, layer: int = 0) -> int:
    """Width of the MLP hidden layer (3072 for bert-base, 1536 for the stand-in; a gated MLP: down_proj's
    input width, intermediate_size)."""
    name, on = mlp_site(model, layer, "pre")
    m = get_module(model, name)
    if on == "input":
        return int(getattr(m, "in_features", None) or m.weight.shape[1])
    return int(getattr(m, "out_features", None) or getattr(m, "nf"))


def is_causal(model) -> bool:
    """True for next-token models (GPT-2, Llama, ...: a *ForCausalLM / *LMHeadModel, or a decoder config):
    their prediction at a '[MASK]' is the next token after the text before it."""
    return (model.config.model_type in CAUSAL_TYPES or bool(getattr(model.config, "is_decoder", False))
            or type(getattr(model, "_orig_mod", model)).__name__.endswith(CAUSAL_CLASSES))


def model_device(model) -> torch.device:
    """The device of the model's weights; a model on the `meta` device (weights never loaded) is an error."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
    if device.type == "meta":
        raise ValueError(f"{model_label(model)} is on the 'meta' device: its weights were never loaded, so it "
                         f"cannot compute anything. Load it with helpers.load_mlm(...) or from_pretrained(...) "
                         f"without device_map='meta' / init_empty_weights")
    return device


def max_tokens(model) -> int | None:
    """The most tokens (special ones included) one text may have for this model: max_position_embeddings,
    2 fewer for RoBERTa (its positions start after its pad id); None when the config does not say."""
    most = getattr(model.config, "max_position_embeddings", None)
    if most is not None and model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        return most - (model.config.pad_token_id or 0) - 1
    return most


def check_lengths(model, texts, lengths, what: str = "text") -> None:
    """A ValueError naming the first of `texts` whose token count (lengths[i]) is more than the model
    takes (max_tokens)."""
    limit = max_tokens(model)
    if limit is None:
        return
    most = model.config.max_position_embeddings
    for i, (s, n) in enumerate(zip(texts, lengths)):
        if n > limit:
            shown = s if len(s) <= 60 else s[:57] + "..."
            raise ValueError(f"{what} {i} {shown!r} has {n} tokens, more than the model takes: "
                             f"max_position_embeddings={most}{f' ({limit} usable)' if limit != most else ''}; "
                             f"shorten or drop it")
