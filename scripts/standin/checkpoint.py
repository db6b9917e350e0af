"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON (in its metadata).

    save(path, model_state, meta, optimizer=None)   -> path (a .safetensors file)
    load(path)                                      -> (model_state, meta, optimizer_state or None)

A checkpoint holds the model's state dict, a JSON-able `meta` dict (step, scores, arguments) and,
optionally, an optimizer's state (its tensors beside the model's, its param_groups in the JSON), so
`optimizer.load_state_dict(optimizer_state)` resumes training. Loading runs no code from the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_MODEL, _OPT = "model.", "opt."


def save(path, model_state: dict, meta: dict, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write the checkpoint to `path` (tied or shared tensors are stored once each, as copies)."""
    tensors = {_MODEL + k: v.detach().clone().contiguous() for k, v in model_state.items()}
    info = {"meta": meta, "param_groups": None, "scalars": {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        info["param_groups"] = sd["param_groups"]
        for pid, state in sd["state"].items():
            for name, v in state.items():
                key = f"{_OPT}{pid}.{name}"
                if torch.is_tensor(v):
                    tensors[key] = v.detach().clone().contiguous()
                else:
                    info["scalars"][key] = v
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata={"checkpoint": json.dumps(info)})
    return path


def load(path) -> tuple[dict, dict, dict | None]:
    """(model state dict, meta, optimizer state dict or None) from a file written by save()."""
    tensors = load_file(path)
    with open(path, "rb") as f:                      # the JSON header holds the metadata
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    info = json.loads(header["__metadata__"]["checkpoint"])
    model = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    if info["param_groups"] is None:
        return model, info["meta"], None
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(info["scalars"].items()):
        if key.startswith(_OPT):
            pid, name = key[len(_OPT):].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    return model, info["meta"], {"state": state, "param_groups": info["param_groups"]}
