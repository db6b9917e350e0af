"""Fine-tune the stand-in masked LM from all-MiniLM-L6-v2 (pip package weights).

Recipe (see data/models/stand-in/MODEL_CARD.md): BertForMaskedLM initialised from
the package's encoder. Frozen: word/position/type embeddings (so the tied decoder)
and layers 0-1. Trained: layers 2-5 and the MLM head, with 15% masking (80/10/10;
pronouns at 50%) on 64-token packed sequences, no dropout. Freezing layers 0-1 is
about 30% faster per step on 2 cores. Logits are computed at masked positions only
(the 30522-way decoder is over half the FLOPs of a full forward at this size).

Usage:
  python scripts/standin/train.py --corpus build/corpus.txt --steps 2200 --seed 0 --out build/ckpt
  python scripts/standin/train.py ... --resume build/ckpt --seed 1      # new data order
The shipped model: steps 0-600 (seeds 0, 1), then --resume with --steps 1700 --seed 2 on the
corpus built with `corpus.py --seed 2`.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from helpers.loading import standin_base  # noqa: E402
import checkpoint  # noqa: E402
import evaluate as ev  # noqa: E402
from evaluate import is_heldout  # noqa: E402,F401  (align.py reads it as train.is_heldout)

SEQ = 64
FREEZE_LAYERS = 2      # the lowest layers kept frozen (stage 1 and stage 2 alike)


def pack(ids_list: list[list[int]], cls: int, sep: int, rng: random.Random) -> np.ndarray:
    order = list(range(len(ids_list)))
    rng.shuffle(order)
    stream: list[int] = []
    for i in order:
        stream.extend(ids_list[i][: 4 * SEQ])
        stream.append(sep)
    n = len(stream) // (SEQ - 1)
    arr = np.asarray(stream[: n * (SEQ - 1)], dtype=np.int64).reshape(n, SEQ - 1)
    return np.concatenate([np.full((n, 1), cls, dtype=np.int64), arr], axis=1)


PRONOUNS = ("he", "she", "him", "her", "his", "hers", "himself", "herself")


def mask_batch(x: torch.Tensor, tok, g: torch.Generator, pronoun_rate: float = 0.5):
    """BERT masking (80% [MASK], 10% random, 10% kept) at 15% of tokens, pronouns at `pronoun_rate`."""
    special = (x == tok.cls_token_id) | (x == tok.sep_token_id) | (x == tok.pad_token_id)
    rate = torch.full(x.shape, 0.15)
    rate[torch.isin(x, torch.tensor(tok.convert_tokens_to_ids(list(PRONOUNS))))] = pronoun_rate
    sel = (torch.rand(x.shape, generator=g) < rate) & ~special
    labels = x[sel]
    inp = x.clone()
    r = torch.rand(labels.shape, generator=g)
    repl = labels.clone()
    repl[r < 0.8] = tok.mask_token_id
    rnd = (r >= 0.8) & (r < 0.9)
    repl[rnd] = torch.randint(1000, tok.vocab_size, (int(rnd.sum()),), generator=g)
    inp[sel] = repl
    return inp, sel, labels


def setup_training(model, freeze_layers: int, lr_head: float, lr_enc: float):
    """Freeze the embeddings (so the tied decoder) and the lowest layers, switch dropout off;
    return (head params, encoder params, AdamW with one learning rate for each)."""
    model.bert.embeddings.requires_grad_(False)
    for layer in model.bert.encoder.layer[:freeze_layers]:
        layer.requires_grad_(False)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("cls.")]
    enc = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("cls.")]
    opt = torch.optim.AdamW([{"params": head, "lr": lr_head}, {"params": enc, "lr": lr_enc}], weight_decay=0.01)
    return head, enc, opt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, required=True, help="total optimiser steps of the schedule")
    ap.add_argument("--stop-at", type=int, default=None, help="stop (and save) at this step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr-head", type=float, default=2e-3)
    ap.add_argument("--lr-enc", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--freeze-layers", type=int, default=FREEZE_LAYERS)
    ap.add_argument("--eval-docs", type=int, default=400, help="held-out documents for top-1 during training")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    model, tok = standin_base(head="random", seed=0)
    head, enc, opt = setup_training(model, a.freeze_layers, a.lr_head, a.lr_enc)
    step = 0
    if a.resume:
        state, meta, opt_state = checkpoint.load(Path(a.resume) / "train_state.safetensors")
        model.load_state_dict(state, strict=False)
        opt.load_state_dict(opt_state)
        step = meta["step"]
        print(f"resumed at step {step}", flush=True)

    docs = Path(a.corpus).read_text().splitlines()
    held = [d for d in docs if is_heldout(d)]
    train_docs = [d for d in docs if not is_heldout(d)]
    t0 = time.time()
    ids = tok(train_docs, add_special_tokens=False)["input_ids"]
    print(f"{len(train_docs)} train docs, {len(held)} held out; tokenised in {time.time() - t0:.0f}s", flush=True)
    rng = random.Random(a.seed)
    data = pack(ids, tok.cls_token_id, tok.sep_token_id, rng)
    g = torch.Generator().manual_seed(a.seed)
    base = [grp["lr"] for grp in opt.param_groups]

    def lr_factor(s: int) -> float:
        if s < a.warmup:
            return (s + 1) / a.warmup
        frac = min(1.0, (s - a.warmup) / max(1, a.steps - a.warmup))
        return 1.0 - 0.95 * frac

    model.train()
    pos = 0
    t_start, losses = time.time(), []
    stop = a.stop_at or a.steps
    while step < stop:
        if pos + a.batch > len(data):
            data = pack(ids, tok.cls_token_id, tok.sep_token_id, rng)
            pos = 0
        x = torch.from_numpy(data[pos: pos + a.batch])
        pos += a.batch
        inp, sel, labels = mask_batch(x, tok, g)
        for grp, lr in zip(opt.param_groups, base):
            grp["lr"] = lr * lr_factor(step)
        hidden = model.bert(input_ids=inp).last_hidden_state
        logits = model.cls(hidden[sel])
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head + enc, 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 100 == 0:
            el = time.time() - t_start
            print(f"step {step} loss {np.mean(losses[-100:]):.3f} lr_f {lr_factor(step):.3f} "
                  f"{len(losses) / el:.2f} it/s", flush=True)
        if step % a.eval_every == 0 or step == stop:
            model.eval()
            scores = ev.score(model, tok, held_docs=held[: a.eval_docs])
            model.train()
            print("EVAL", step, json.dumps(scores), flush=True)
            checkpoint.save(out / "train_state.safetensors", model.state_dict(), {"step": step, "scores": scores},
                            optimizer=opt)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "seed": a.seed, "loss": float(np.mean(losses[-500:])),
                                    "time": time.time(), **scores}) + "\n")


if __name__ == "__main__":
    main()
