"""The kit on an accelerator: does every part give the CPU's answer on a GPU, and how fast is it there?

    python scripts/device_check.py --standin FOLDER [--out DIR]

Runs on one CUDA device (a machine lent for a short check; nothing is downloaded):
  1. the stand-in (FOLDER: its files, weights possibly stored as float16 to travel light; they are
     loaded as float32 on both devices, so the CPU and GPU runs use the same weights) with
     load_mlm(FOLDER, device=...): Parts 1-3 on the CPU and on the GPU, timed; the two runs' t-values,
     neuron sets and logits compared;
  2. the fast null (helpers.fast) against the exact slow path on the GPU: max difference, time of each;
  3. lesion_test on the GPU (the sequential p and the draws it used) and on the CPU: same p, same draws;
  4. the eight exercises' reference solutions (the solution notebooks' cells) judged by their checks on
     the GPU model: each must pass, and the model must be left as it was;
  5. a bert-base-shaped random BERT (12 x 3072), saved and loaded with load_mlm: Part 1 at all 12 layers
     on each device, a 1000-set fast null on the GPU.
Prints one table and writes DIR/device_check.json. Each section is timed separately and a failure
in one is reported and does not stop the others.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _nbformat_shim() -> None:
    """scripts/mutation.py reads the solution notebooks with nbformat; where it is missing, read the JSON."""
    try:
        import nbformat  # noqa: F401
        return
    except ImportError:
        pass

    def read(path, as_version=4):
        nb = json.loads(Path(path).read_text())
        cells = [types.SimpleNamespace(cell_type=c["cell_type"], source="".join(c["source"])) for c in nb["cells"]]
        return types.SimpleNamespace(cells=cells)

    sys.modules["nbformat"] = types.SimpleNamespace(read=read)


def float32_copy(folder: Path) -> Path:
    """A copy of a model folder whose weights are float32 (they may travel as float16)."""
    from safetensors.torch import load_file, save_file
    out = Path(tempfile.mkdtemp(prefix="standin32-"))
    for f in folder.iterdir():
        if f.suffix == ".safetensors":
            save_file({k: v.float().contiguous() for k, v in load_file(str(f)).items()}, str(out / f.name),
                      metadata={"format": "pt"})
        elif f.is_file():
            shutil.copy(f, out / f.name)
    cfg = out / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text())
        for k in ("torch_dtype", "dtype"):
            if k in c:
                c[k] = "float32"
        cfg.write_text(json.dumps(c))
    return out


def install_standin(folder: Path) -> Path:
    """Put the float32 copy where load_mlm("stand-in") looks (cache_root()/stand-in-<tag>), unless one is
    there: on a machine without the stand-in's base package, the stand-in (and bench/bench04.py) then load."""
    from helpers import loading
    tag = loading._sha256(loading.DELTA_DIR / loading.DELTA_FILE)[:12]
    dest = loading.cache_root() / f"stand-in-{tag}"
    if not loading._complete(dest):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(folder, dest)
        (dest / loading._COMPLETE).write_text(tag)
    return dest


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def lecture(model, tok):
    from helpers import lecture as L
    p1, t1 = timed(lambda: L.part1(model, tok))
    p2, t2 = timed(lambda: L.part2(model, tok))
    p3, t3 = timed(lambda: L.part3(model, tok, p1, p2))
    return (p1, p2, p3), (t1, t2, t3)


def section_lecture(cpu, gpu, tok, res):
    (c1, c2, c3), tc = lecture(cpu, tok)
    lecture(gpu, tok)                               # warm-up (kernels, allocator)
    (g1, g2, g3), tg = lecture(gpu, tok)
    words = c1.contrast.words
    res["lecture"] = {
        "cpu_s": [round(t, 3) for t in tc], "gpu_s": [round(t, 3) for t in tg],
        "layer": c1.layer,
        "t_max_abs_diff": float(np.nanmax(np.abs(c1.test.t - g1.test.t))),
        "same_neurons": {w: bool((c1.neurons(w) == g1.neurons(w)).all()) for w in words},
        "n_neurons": {w: int(g1.neurons(w).sum()) for w in words},
        "part2_logit_max_abs_diff": float(np.abs(np.asarray(c2.logits) - np.asarray(g2.logits)).max()),
        "part3_logit_max_abs_diff": float(np.abs(np.asarray(c3.logits) - np.asarray(g3.logits)).max()),
    }
    return g1


def section_fast(gpu, tok, p1, res):
    from helpers import fast
    from helpers.controls import random_neuron_sets
    from helpers.stimuli import cloze_set
    ev = cloze_set(tok, "her")
    k = int(p1.neurons("her").sum()) or 10
    sets = random_neuron_sets(p1.test.t.size, k, 200, seed=0)
    kw = dict(target=ev.target, foil=ev.foil)
    fast.ablation_logit_diffs(gpu, tok, ev.texts, ev.positions, p1.layer, sets[:8], **kw)   # warm-up
    f, tf = timed(lambda: fast.ablation_logit_diffs(gpu, tok, ev.texts, ev.positions, p1.layer, sets, **kw))
    s, ts = timed(lambda: fast.ablation_logit_diffs(gpu, tok, ev.texts, ev.positions, p1.layer, sets[:40],
                                                    fast=False, **kw))
    res["fast_null"] = {"sets": len(sets), "set_size": k, "texts": len(ev.texts), "fast_s": round(tf, 3),
                        "slow_s_per_40": round(ts, 3), "speedup_per_set": round((ts / 40) / (tf / len(sets)), 1),
                        "max_abs_diff": float(np.abs(f[:40] - s).max())}


def section_lesion(cpu, gpu, tok, p1, res):
    from helpers import controls
    from helpers.stimuli import cloze_set
    ev = cloze_set(tok, "her")
    neurons = np.flatnonzero(p1.neurons("her"))
    out = {}
    for name, m in (("cpu", cpu), ("gpu", gpu)):
        r, t = timed(lambda: controls.lesion_test(m, tok, p1.layer, neurons, ev, n_draws=1000))
        out[name] = {"s": round(t, 3), "p": r.p, "draws": r.n_draws, "observed": round(float(r.observed), 4),
                     "summary": r.summary()}
    out["same_p"] = out["cpu"]["p"] == out["gpu"]["p"] and out["cpu"]["draws"] == out["gpu"]["draws"]
    res["lesion_test"] = out


def section_checks(gpu, tok, res):
    _nbformat_shim()
    import mutation
    from helpers.check import _guard
    log = Path(tempfile.mkdtemp()) / "checks.jsonl"
    os.environ["KIT_CHECK_LOG"] = str(log)
    before = _guard.Snapshot(gpu, tok)
    lines = {}
    for label in sorted(mutation.EXERCISES):
        src, _ = mutation.exercise_cell(label)
        ns = mutation.namespace()
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            try:
                exec(compile(src, f"<exercise {label}>", "exec"), ns)
                mutation.EXERCISES[label][1](ns, gpu, tok)
            except Exception as e:                       # noqa: BLE001 - reported, not hidden
                print(f"RAISED {type(e).__name__}: {e}")
        lines[label] = {"line": buf.getvalue().strip().splitlines()[-1:] or [""], "s": round(time.perf_counter() - t, 2)}
    records = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    status = {}
    for r in records:
        status[r["exercise"]] = r["status"]
    res["checks"] = {"per_exercise": lines, "status": status,
                     "all_passed": len(status) == 8 and all(s == "passed" for s in status.values()),
                     "model_unchanged": not before.changes()}


def section_bert_base(tok, res):
    """A bert-base-shaped random BERT (12 layers x 3072 neurons), saved and loaded through load_mlm on the GPU:
    Part 1 at every layer and a 1000-set fast null at layer 6, on the GPU and (Part 1 only) on the CPU."""
    from transformers import BertConfig, BertForMaskedLM

    from helpers import fast, lecture
    from helpers.controls import random_neuron_sets
    from helpers.stimuli import cloze_set
    from helpers.loading import load_mlm
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="bert-base-shape-"))
    BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size)).save_pretrained(folder)
    tok.save_pretrained(folder)
    out = {}
    for dev in ("cuda", "cpu") if torch.cuda.is_available() else ("cpu",):
        m, t = load_mlm(str(folder), device=dev)
        lecture.part1(m, t, layer=1)                                        # warm-up
        _, out[f"part1_all_layers_{dev}_s"] = timed(lambda: [lecture.part1(m, t, layer=L) for L in range(12)])
        if dev == "cuda":
            ev = cloze_set(t, "her")
            sets = random_neuron_sets(3072, 300, 1000, seed=0)
            _, out["fast_null_1000_sets_cuda_s"] = timed(lambda: fast.ablation_logit_diffs(
                m, t, ev.texts, ev.positions, 6, sets, ev.target, ev.foil))
        del m
    res["bert_base_shape"] = {k: round(v, 3) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--standin", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "build/device")))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from helpers.loading import load_mlm
    res = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
           "cpu_threads": torch.get_num_threads()}
    folder = float32_copy(args.standin)
    res["standin_cache"] = str(install_standin(folder))
    cpu, tok = load_mlm(str(folder), device="cpu")
    gpu, _ = load_mlm(str(folder), device="cuda" if torch.cuda.is_available() else "cpu")
    p1 = None
    for name, fn in (("lecture", lambda: section_lecture(cpu, gpu, tok, res)),
                     ("fast", lambda: section_fast(gpu, tok, p1, res)),
                     ("lesion", lambda: section_lesion(cpu, gpu, tok, p1, res)),
                     ("checks", lambda: section_checks(gpu, tok, res)),
                     ("bert_base", lambda: section_bert_base(tok, res))):
        t = time.perf_counter()
        try:
            out = fn()
            if name == "lecture":
                p1 = out
        except Exception:                                # noqa: BLE001 - one section's failure is reported
            res.setdefault("errors", {})[name] = traceback.format_exc()[-3000:]
        res.setdefault("section_s", {})[name] = round(time.perf_counter() - t, 2)
        (args.out / "device_check.json").write_text(json.dumps(res, indent=1, default=str))
        key = {"fast": "fast_null", "lesion": "lesion_test", "bert_base": "bert_base_shape"}.get(name, name)
        shown = res.get(key, res.get("errors", {}).get(name))
        print(f"[{name}] {res['section_s'][name]} s", json.dumps(shown, default=str)[:1500], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
