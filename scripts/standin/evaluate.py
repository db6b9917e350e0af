"""Scores of a masked LM on what the kit needs (prints JSON; importable as `score`).

  general_top1        top-1 accuracy at 15%-masked tokens of held-out corpus documents
  cloze_*             data/eval/pronoun_cloze.tsv: an item is right when
                      logit(answer) > logit(foil) at its [MASK]; overall and per answer gender/role
  demo_right/total    the `test` lines of data/contrasts/*.tsv: expected word beats the other word

Usage: python scripts/standin/evaluate.py [--model stand-in] [--corpus build/corpus.txt]
"""
from __future__ import annotations

import argparse
import hashlib
import csv
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
FEMALE = {"she", "her", "hers", "herself"}


@torch.no_grad()

def is_heldout(doc: str) -> bool:
    """1% of documents, chosen by hash so every run and seed holds out the same ones."""
    return int(hashlib.md5(doc.encode()).hexdigest(), 16) % 100 == 0

def _mask_logits(model, tok, texts: list[str], batch: int = 64) -> list[torch.Tensor]:
    """Logits over the vocabulary at the (single) [MASK] of each text."""
    out = []
    for i in range(0, len(texts), batch):
        enc = tok(texts[i: i + batch], return_tensors="pt", padding=True)
        logits = model(**enc).logits
        rows, cols = (enc["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
        assert len(rows) == len(texts[i: i + batch]), "each text needs exactly one [MASK]"
        out.extend(logits[rows, cols])
    return out


def cloze(model, tok, path: Path = ROOT / "data/eval/pronoun_cloze.tsv") -> dict:
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    logits = _mask_logits(model, tok, [r["text"] for r in rows])
    res: dict[str, list[bool]] = {}
    for r, lg in zip(rows, logits):
        ok = bool(lg[tok.convert_tokens_to_ids(r["answer"])] > lg[tok.convert_tokens_to_ids(r["foil"])])
        g = "female" if r["answer"] in FEMALE else "male"
        for key in ("all", g, r["role"], f"{g}_{r['role']}"):
            res.setdefault(key, []).append(ok)
    return {f"cloze_{k}": round(sum(v) / len(v), 3) for k, v in res.items()} | {"cloze_n": len(rows)}


def demo(model, tok) -> dict:
    right = total = 0
    wrong = []
    for f in sorted((ROOT / "data/contrasts").glob("*.tsv")):
        meta = {}
        tests = []
        for line in f.read_text().splitlines():
            if line.startswith("#:") and "=" in line:
                k, v = line[2:].split("=", 1)
                meta[k.strip()] = v.strip()
            elif line.startswith("test\t"):
                tests.append(line.split("\t")[1:])
        if not tests:
            continue
        logits = _mask_logits(model, tok, [t for t, _ in tests])
        for (text, exp), lg in zip(tests, logits):
            other = meta["b"] if exp == meta["a"] else meta["a"]
            ok = bool(lg[tok.convert_tokens_to_ids(exp)] > lg[tok.convert_tokens_to_ids(other)])
            right += ok
            total += 1
            if not ok:
                wrong.append(f"{f.stem}: {text}")
    return {"demo_right": right, "demo_total": total, "demo_wrong": wrong}


@torch.no_grad()
def general_top1(model, tok, docs: list[str], seed: int = 123, batch: int = 64) -> float:
    g = torch.Generator().manual_seed(seed)
    hit = n = 0
    for i in range(0, len(docs), batch):
        enc = tok(docs[i: i + batch], return_tensors="pt", padding=True, truncation=True, max_length=64)
        ids = enc["input_ids"]
        special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (ids == tok.pad_token_id)
        sel = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
        inp = ids.clone()
        inp[sel] = tok.mask_token_id
        pred = model(input_ids=inp, attention_mask=enc["attention_mask"]).logits[sel].argmax(-1)
        hit += int((pred == ids[sel]).sum())
        n += int(sel.sum())
    return round(hit / max(n, 1), 4)


def score(model, tok, held_docs: list[str] | None = None) -> dict:
    s: dict = {}
    if held_docs:
        s["general_top1"] = general_top1(model, tok, held_docs)
    if (ROOT / "data/eval/pronoun_cloze.tsv").exists():
        try:
            s |= cloze(model, tok)
        except Exception as e:  # the set may be mid-edit while training runs
            s["cloze_error"] = str(e)
    try:
        s |= demo(model, tok)
    except Exception as e:
        s["demo_error"] = str(e)
    return s


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="stand-in")
    ap.add_argument("--corpus", default=None, help="corpus file; its hash-held-out 1% gives general top-1")
    ap.add_argument("--max-docs", type=int, default=1500)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers.loading import load_mlm

    model, tok = load_mlm(a.model)
    held = None
    if a.corpus:
        held = [d for d in Path(a.corpus).read_text().splitlines() if is_heldout(d)][: a.max_docs]
    print(json.dumps(score(model, tok, held), indent=1))
