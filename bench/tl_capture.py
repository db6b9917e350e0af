"""Row (d) of bench/bench.py: the Part 1 capture through TransformerLens, next to ours, in one process.

Run by bench.py with bench/.venv/bin/python (made by bench/setup_tl.sh). Prints one JSON line:
{"ours", "tl" (median s), "ours_ratio", "tl_ratio" (x a bare forward timed next to each run),
 "ours_mem", "tl_mem" (MB), "max_abs_diff", "versions"}
or {"unavailable": "<reason>"}. The HookedEncoder gets the same weights as the Hugging Face
model (built from a config here, since from_pretrained needs the hub), and the same batches.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import BATCH, bare_forward, load, stimuli, timed  # noqa: E402


def hooked_encoder(model, tok):
    """A TransformerLens HookedEncoder holding `model`'s weights (BertForMaskedLM)."""
    from transformer_lens import HookedEncoder, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.bert import convert_bert_weights
    from types import SimpleNamespace

    from transformers.models.bert.modeling_bert import BertPooler

    c = model.config
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size, d_head=c.hidden_size // c.num_attention_heads, n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size, n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings,
        eps=c.layer_norm_eps, d_vocab=c.vocab_size, act_fn="gelu", attention_dir="bidirectional",
        original_architecture="BertForMaskedLM", device="cpu", n_devices=1)
    # the converter also reads a pooler and an NSP head, which BertForMaskedLM lacks: give it unused ones
    shim = SimpleNamespace(bert=SimpleNamespace(embeddings=model.bert.embeddings, encoder=model.bert.encoder,
                                                pooler=getattr(model.bert, "pooler", None) or BertPooler(c)),
                           cls=SimpleNamespace(predictions=model.cls.predictions,
                                               seq_relationship=torch.nn.Linear(c.hidden_size, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl = HookedEncoder(cfg, tokenizer=tok, move_to_device=False)
    tl.load_state_dict(convert_bert_weights(shim, cfg), strict=False)
    return tl.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bert-base")
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        import importlib.metadata as md
        versions = f"transformer-lens {md.version('transformer-lens')}"
        import transformer_lens  # noqa: F401
    except Exception as e:  # not installed / broken install
        print(json.dumps({"unavailable": f"transformer_lens does not import: {type(e).__name__}: {e}"[:200]}))
        return
    from helpers.capture import mlp_activations
    from helpers.stimuli import target_positions

    model, tok, _ = load(a.model)
    if model.config.model_type != "bert":
        print(json.dumps({"unavailable": f"HookedEncoder takes BERT only, not {model.config.model_type}"}))
        return
    try:
        tl = hooked_encoder(model, tok)
    except Exception as e:
        print(json.dumps({"unavailable": f"HookedEncoder could not be built offline: {type(e).__name__}: {e}"[:200]}))
        return
    _, sents, words = stimuli()
    L = a.layer
    name = f"blocks.{L}.mlp.hook_pre"
    pos = target_positions(tok, sents, words)
    order = np.argsort([len(tok.tokenize(s)) for s in sents], kind="stable")

    def tl_capture():
        out = np.empty((len(sents), model.config.intermediate_size), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(order), BATCH):
                idx = order[i: i + BATCH]
                enc = tok([sents[j] for j in idx], return_tensors="pt", padding=True)
                _, cache = tl.run_with_cache(enc["input_ids"], token_type_ids=enc["token_type_ids"],
                                             one_zero_attention_mask=enc["attention_mask"],
                                             names_filter=lambda n: n == name)
                out[idx] = cache[name][torch.arange(len(idx)), torch.tensor([pos[j] for j in idx])].numpy()
        return out

    def ours():
        return mlp_activations(model, tok, sents, words, [L], site="pre", batch_size=BATCH, progress=False)[L]

    diff = float(np.abs(tl_capture() - ours()).max())
    bare = lambda: bare_forward(model, tok, sents)  # noqa: E731
    t_ours, r_ours, m_ours = timed(ours, a.repeats, bare)
    t_tl, r_tl, m_tl = timed(tl_capture, a.repeats, bare)
    print(json.dumps(dict(ours=t_ours, tl=t_tl, ours_ratio=r_ours, tl_ratio=r_tl, ours_mem=m_ours, tl_mem=m_tl,
                          max_abs_diff=diff, versions=versions, n_sentences=len(sents))))


if __name__ == "__main__":
    main()
