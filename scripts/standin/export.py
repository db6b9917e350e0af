"""Write the trained tensors (those that differ from the pip package) as fp16 safetensors.

Usage: python scripts/standin/export.py build/ckpt/train_state.safetensors data/models/stand-in/delta.safetensors
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers.loading import _base_dir, _base_state  # noqa: E402
from checkpoint import load  # noqa: E402


def main(src: str, dst: str) -> None:
    state, meta, _ = load(src)
    base = _base_state(_base_dir())
    delta = {}
    for k, v in state.items():
        if k == "cls.predictions.decoder.weight" or k.endswith("position_ids"):
            continue  # tied to the (frozen) word embeddings
        if k in base and torch.equal(base[k].float(), v.float()):
            continue
        delta[k] = v.detach().to(torch.float16).contiguous()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_file(delta, dst, metadata={"step": str(meta["step"]), "scores": json.dumps(meta.get("scores", {}))})
    n = sum(v.numel() for v in delta.values())
    print(f"{len(delta)} tensors, {n / 1e6:.2f}M values, {Path(dst).stat().st_size / 1e6:.1f} MB -> {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
