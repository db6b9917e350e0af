"""Stage 2 of the stand-in recipe: masked-LM training plus a "[MASK] looks like its word" loss.

After stage 1 (train.py) the stand-in predicts pronouns well, but the neurons that tell "her" from
"him" at a visible pronoun were not the ones it uses at a [MASK]: zeroing them there did no more
than zeroing random neurons (MODEL_CARD.md). The lecture's method assumes that a model builds at a
[MASK] a state like that of the word it predicts, which a masked LM trained on billions of words may
do; 1700 CPU steps did not get this model there. Stage 2 asks for it directly. On every batch the model also runs (without gradient) on
the unmasked text, and at each position replaced by [MASK] the MLP pre-activations
(intermediate.dense output) of the chosen layers are pulled toward those at the visible word:

    loss = MLM cross-entropy + weight * mean_L( ||a_L[MASK] - a_L[word]||^2 / ||a_L[word]||^2 )

Nothing in the loss names a pronoun, a neuron or a lesion: it applies to every masked word.

Usage (the shipped model: three runs on the stage-1 state, then export.py on the last run's state_300.safetensors):
  B=scripts/standin/build
  python scripts/standin/align.py --init $B/ckpt/train_state.safetensors --corpus $B/corpus.txt \
      --weight 1 --layers 3,4,5 --steps 300 --seed 3 --out $B/align1
  python scripts/standin/align.py --init $B/align1/state_300.safetensors --corpus $B/corpus.txt \
      --weight 3 --layers 3,4,5 --steps 400 --seed 4 --out $B/align2
  python scripts/standin/align.py --init $B/align2/state_400.safetensors --corpus $B/corpus.txt \
      --weight 5 --layers 4 --steps 400 --decay --seed 5 --out $B/align3
  python scripts/standin/export.py $B/align3/state_300.safetensors data/models/stand-in/delta.safetensors
(State files carry the cumulative step: 2000, 2400, then 2700 for the shipped one.)
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
from helpers.hooks import TraceDict  # noqa: E402
from helpers.arch import mlp_module_name  # noqa: E402
from helpers.loading import standin_base  # noqa: E402
import checkpoint  # noqa: E402
import evaluate as ev  # noqa: E402
import train as tr  # noqa: E402


def alignment_loss(masked: dict, visible: dict, where: torch.Tensor) -> torch.Tensor:
    """Mean over layers of ||a([MASK]) - a(word)||^2 / ||a(word)||^2 at the positions `where`.

    masked, visible: {layer: [batch, seq, neurons]} MLP pre-activations of the masked and the
    unmasked text; where: [batch, seq] bool, the positions shown as [MASK]. visible is the target
    (no gradient flows into it).
    """
    if not masked:
        raise ValueError("no layers to align")
    terms = []
    for L, a in masked.items():
        target = visible[L][where].detach()
        terms.append(((a[where] - target) ** 2).mean() / (target ** 2).mean().clamp_min(1e-12))
    return sum(terms) / len(terms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="a train.py train_state.safetensors or a state_<step>.safetensors of this script")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the alignment loss")
    ap.add_argument("--layers", default="3,4,5", help="layers whose MLP pre-activations are aligned")
    ap.add_argument("--lr-enc", type=float, default=5e-5)
    ap.add_argument("--lr-head", type=float, default=3e-4)
    ap.add_argument("--decay", action="store_true", help="learning rates fall linearly to 5%% over the run")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = [int(x) for x in a.layers.split(",")]

    model, tok = standin_base(head="random", seed=0)
    state, meta, _ = checkpoint.load(a.init)
    model.load_state_dict(state, strict=False)
    step0 = int(meta.get("step", 0))
    head, enc, opt = tr.setup_training(model, tr.FREEZE_LAYERS, a.lr_head, a.lr_enc)  # frozen as in stage 1

    docs = Path(a.corpus).read_text().splitlines()
    ids = tok([d for d in docs if not tr.is_heldout(d)], add_special_tokens=False)["input_ids"]
    rng = random.Random(a.seed)
    data = tr.pack(ids, tok.cls_token_id, tok.sep_token_id, rng)
    g = torch.Generator().manual_seed(a.seed)

    base_lr = [grp["lr"] for grp in opt.param_groups]
    names = {L: mlp_module_name(model, L, "pre") for L in layers}      # intermediate.dense outputs
    model.train()
    pos, t0, hist = 0, time.time(), []
    with TraceDict(model, names.values(), detach=False) as td:
        for step in range(1, a.steps + 1):
            if pos + a.batch > len(data):
                data, pos = tr.pack(ids, tok.cls_token_id, tok.sep_token_id, rng), 0
            x = torch.from_numpy(data[pos: pos + a.batch])
            pos += a.batch
            inp, sel, labels = tr.mask_batch(x, tok, g)
            if a.decay:
                for grp, lr in zip(opt.param_groups, base_lr):
                    grp["lr"] = lr * (1 - 0.95 * (step - 1) / max(1, a.steps - 1))
            where = (inp == tok.mask_token_id) & sel            # positions shown as [MASK]
            with torch.no_grad():
                model.bert(input_ids=x)                          # the same text, every word visible
                visible = {L: td[n].output for L, n in names.items()}
            hidden = model.bert(input_ids=inp).last_hidden_state
            mlm = torch.nn.functional.cross_entropy(model.cls(hidden[sel]), labels)
            align = alignment_loss({L: td[n].output for L, n in names.items()}, visible, where)
            loss = mlm + a.weight * align
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head + enc, 1.0)
            opt.step()
            hist.append((mlm.item(), align.item()))
            if step % 20 == 0:
                m, al = np.mean(hist[-20:], 0)
                print(f"step {step} mlm {m:.3f} align {al:.3f} {step / (time.time() - t0):.2f} it/s", flush=True)
            if step % a.save_every == 0 or step == a.steps:
                model.eval()
                scores = ev.score(model, tok)
                model.train()
                print("EVAL", step, json.dumps({k: v for k, v in scores.items() if k != "demo_wrong"}), flush=True)
                checkpoint.save(out / f"state_{step}.safetensors", model.state_dict(),
                                {"step": step0 + step, "scores": scores, "align": vars(a)})


if __name__ == "__main__":
    main()
