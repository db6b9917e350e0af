"""Is the kit fast enough to explore? Times each step as a multiple of one bare forward pass.

    python bench/bench.py                       # bert-base shape (random weights) + the stand-in
    python bench/bench.py --models stand-in --draws 200 --repeats 3

Rows (each a median of --repeats runs, as a ratio to a bare forward of the same 108 sentences):
  (a) Part 1 at layer L: capture (one pass, stopped after L) + paired t-test + FDR
  (b) capture of every layer in one pass vs one pass per layer
  (c) a random-neuron null: ablation_logit_diffs with --draws random sets the size of the "her"
      set, vs the same done naively (one full hooked forward per set; a sample is timed and scaled)
  (d) the Part 1 capture via TransformerLens HookedEncoder.run_with_cache (bench/tl_capture.py,
      run with bench/.venv, made by bench/setup_tl.sh), next to ours in that same process
Under the table, for (c): the FLOPs an exact null needs, where the fast null's time goes (block L+1's
every-token product timed by hooks), and how long those FLOPs take at this run's peak product rate.
Peak memory: the largest resident-set growth seen during the row (sampled every 5 ms).
See bench/README.md for the targets and how to read the table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

N_EACH = 54            # 54 "him" + 54 "her" sentences = 108
BATCH = 32             # the batch size mlp_activations uses; the bare forward uses it too


# --- measuring ---------------------------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    """Hand freed heap memory back to the OS, so that the next row's growth is its own (glibc only)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Largest growth of this process's resident memory inside the block (MB), sampled every 5 ms."""

    def __enter__(self):
        _trim()
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())
        self.mb = (self.peak - self.start) / 2**20


def timed(fn, repeats: int, bare=None, warmup: bool = True) -> tuple[float, float | None, float]:
    """(median seconds, median ratio to a bare forward, peak MB) of fn() over `repeats` runs.

    bare: the bare forward; each run of fn is then bracketed by bare forwards, and its ratio is
    fn's time over the mean of the two around it. The machine's load drifts, so pairs timed
    close together give steadier ratios than two medians taken minutes apart.
    Peak MB covers a warm-up run too (later runs reuse the memory the first one allocated).
    """
    def clock(f):
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0

    times, bares, peak = [], [], 0.0
    if warmup:
        with PeakRSS() as mem:
            fn()
        peak = mem.mb
    for _ in range(repeats):
        if bare is not None:
            bares.append(clock(bare))
        with PeakRSS() as mem:
            times.append(clock(fn))
        peak = max(peak, mem.mb)
    if bare is None:
        return statistics.median(times), None, peak
    bares.append(clock(bare))
    ratios = [t / ((b0 + b1) / 2) for t, b0, b1 in zip(times, bares, bares[1:])]
    return statistics.median(times), statistics.median(ratios), peak


# --- inputs ------------------------------------------------------------------------------------

def stimuli():
    """108 sentences: the first 54 "him" and 54 "her" sentences of him_her.tsv (cycled if fewer)."""
    from helpers.stimuli import load_contrast
    c = load_contrast("him_her")
    take = lambda xs: [xs[i % len(xs)] for i in range(N_EACH)]  # noqa: E731
    return c, take(c.sentences_a) + take(c.sentences_b), [c.a] * N_EACH + [c.b] * N_EACH


def load(name: str):
    """(model, tokenizer, label) for 'bert-base' (random weights, bert-base-uncased shape) or 'stand-in'."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from helpers import loading as models
    if name == "bert-base":
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig()).eval()
        return model, AutoTokenizer.from_pretrained(models._base_dir()), "bert-base shape, random weights"
    if name == "stand-in":
        if (models.DELTA_DIR / models.DELTA_FILE).exists():
            model, tok = models.load_mlm("stand-in", verbose=False)
            return model, tok, "stand-in (trained)"
        model, tok = models.standin_base()
        return model.eval(), tok, "stand-in shape (MiniLM encoder, untrained head: no delta.safetensors)"
    raise SystemExit(f"unknown model {name!r}: use bert-base or stand-in")


def bare_forward(model, tok, sents):
    """Full forward with MLM logits at every token, in length-sorted batches of 32 (as the capture batches)."""
    order = np.argsort([len(tok.tokenize(s)) for s in sents], kind="stable")
    with torch.no_grad():
        for i in range(0, len(order), BATCH):
            model(**tok([sents[j] for j in order[i: i + BATCH]], return_tensors="pt", padding=True))


# --- the rows ----------------------------------------------------------------------------------

def bench_model(name: str, args) -> tuple[str, list[dict]]:
    from helpers.capture import mlp_activations
    from helpers.arch import default_layer
    from helpers.arch import n_layers
    from helpers.stats import paired_ttest_fdr

    model, tok, label = load(name)
    c, sents, words = stimuli()
    L = args.layer if args.layer is not None else default_layer(model)
    nl = n_layers(model)
    R = args.repeats
    rows = []

    def capture(layers):
        return mlp_activations(model, tok, sents, words, layers, site="pre", batch_size=BATCH, progress=False)

    def row(key, what, sec, mem, target=None, note="", ratio=None):
        r = dict(key=key, what=what, sec=sec, mem=mem, ratio=ratio, target=target, note=note)
        rows.append(r)
        print(f"  .. {what}: {sec:.3f}s", file=sys.stderr, flush=True)
        return r

    bare = lambda: bare_forward(model, tok, sents)  # noqa: E731
    sec, _, mem = timed(bare, R)
    row("bare", "bare forward, 108 sentences (MLM logits)", sec, mem, ratio=1.0)

    part1 = {}

    def run_part1():
        acts = capture([L])[L]
        part1["test"] = paired_ttest_fdr(acts[:N_EACH], acts[N_EACH:])
    if "a" in args.rows:
        sec, ratio, mem = timed(run_part1, R, bare)
        row("a", f"(a) Part 1 at layer {L}: capture + t-test + FDR", sec, mem, (L + 1) / nl + 0.05, ratio=ratio)
    else:
        run_part1()                                    # (c) needs the size of the "her" set

    if "b" in args.rows:
        sec, ratio, mem = timed(lambda: capture(range(nl)), R, bare)
        row("b1", f"(b) capture all {nl} layers, one pass", sec, mem, target=1.1, ratio=ratio)
        sec, ratio, mem = timed(lambda: [capture([l]) for l in range(nl)], max(1, R // 2), bare, warmup=False)
        row("b2", f"(b) capture all {nl} layers, one pass per layer", sec, mem, ratio=ratio)
    if "c" in args.rows:
        null_rows(model, tok, c, sents, words, L, part1["test"], bare, row, name, args)
    if "d" in args.rows:
        rows.extend(tl_rows(name, L, args))
    return f"{name}: {label}; {nl} layers x {part1['test'].t.shape[0]} neurons, layer L={L}", rows


def null_rows(model, tok, c, sents, words, L, test, bare, row, name, args):
    """Row (c): the fast null vs the naive one."""
    from helpers.fast import ablation_logit_diffs, supports_fast
    from helpers.stimuli import target_positions

    her = test.negative                                # more active for "her" than "him"
    k = int(her.sum())
    note = ""
    if k == 0:
        k, note = 10, "no 'her' neuron passed FDR on this model: sets of 10"
    rng = np.random.default_rng(0)
    width = her.shape[0]
    sets = np.stack([rng.choice(width, k, replace=False) for _ in range(args.draws)])
    pos = target_positions(tok, sents, words, verbose=False) if _has_verbose(target_positions) \
        else target_positions(tok, sents, words)
    null = lambda s, fast=True: ablation_logit_diffs(model, tok, sents, pos, L, s, c.b, c.a, fast=fast)  # noqa: E731
    if not supports_fast(model):
        note += " (no fast path for this model: fast=False)"
    sec, ratio, mem = timed(lambda: null(sets), args.null_repeats, bare, warmup=False)
    r1 = row("c1", f"(c) null, {args.draws} random {k}-neuron sets at layer {L} (fast)", sec, mem,
        target=25.0 if name == "bert-base" and args.draws == 1000 else None, note=note.strip(), ratio=ratio)
    S = args.naive_sample
    sec, ratio, mem = timed(lambda: null(sets[:S], fast=False), 1, bare, warmup=False)
    r = row("c2", f"(c) null, naive: {args.draws} full hooked forwards (from {S})", sec * args.draws / S, mem,
            note=f"{sec / S:.2f}s per set, timed on {S} sets", ratio=ratio * args.draws / S)
    f = flop_counts(model, tok, sents, L)
    r1["flops"] = flops(f, L, args.draws)
    part = null_breakdown(model, null, sets[:min(100, args.draws)], L)
    if part is not None:
        r1["parts"] = (f"where the fast null's time goes (runs of 1 and {part['sets']} sets): once per call "
                       f"{part['once_s']:.1f} s, then {part['ms_per_set']:.0f} ms per set; block {L + 1}'s MLP "
                       f"output projection at every token "
                       f"{part['every_ms_per_set']:.0f} ms of it ({part['every_flops'] / 1e9:.2f} GFLOP per set at "
                       f"{part['every_gflops']:.0f} GFLOP/s), everything else "
                       f"{part['ms_per_set'] - part['every_ms_per_set']:.0f} ms")
    d, W = model.config.hidden_size, model.config.intermediate_size
    peak = peak_rate(d, W)
    r1["bound"] = dict(peak=peak, sec=args.draws * f["per_set"] / peak / 1e9,
                       shape=f"[640 x {W}] @ [{W} x {d}]", draws=args.draws)
    if args.check:
        a, b = null(sets[:S]), null(sets[:S], fast=False)
        r["note"] += f"; fast vs naive max |diff| {np.abs(a - b).max():.1e}"


def null_breakdown(model, null, sets, L: int) -> dict | None:
    """Where the fast null's time goes: one run of null(sets) with block L+1's MLP output projection
    timed by hooks (the product an exact null has to run at every token, see flop_counts).
    {sets, once_s (the cached pass and per-text vectors), ms_per_set (from runs of 1 and len(sets) sets),
    every_ms_per_set, every_flops (per set, from the shapes), every_gflops}; None where no block lies between L and the last one (the null then runs no per-token product)."""
    from helpers.hooks import get_module
    from helpers.arch import block_module_name, n_layers
    if L + 2 >= n_layers(model) or len(sets) < 2:
        return None
    dense = get_module(model, block_module_name(model, L + 1)).output.dense
    box = dict(t=0.0, flops=0, start=0.0)

    def start(module, args):
        box["start"] = time.perf_counter()

    def stop(module, args, output):
        box["t"] += time.perf_counter() - box["start"]
        x = args[0]
        box["flops"] += 2 * x.numel() * module.out_features

    start.observe_only = stop.observe_only = True      # read-only hooks: the fast path stays on

    def clock(k):
        t0 = time.perf_counter()
        null(sets[:k])
        return time.perf_counter() - t0

    one = clock(1)                                     # the cached pass + one set
    handles = [dense.register_forward_pre_hook(start), dense.register_forward_hook(stop)]
    try:
        total = clock(len(sets))
    finally:
        for h in handles:
            h.remove()
    k = len(sets)
    per_set = (total - one) / (k - 1)
    return dict(sets=k, once_s=one - per_set, ms_per_set=1e3 * per_set, every_ms_per_set=1e3 * box["t"] / k,
                every_flops=box["flops"] / k, every_gflops=box["flops"] / box["t"] / 1e9 if box["t"] else 0.0)


def peak_rate(d: int, W: int, rows: int = 640, repeats: int = 10) -> float:
    """GFLOP/s of one fp32 [rows, W] @ [W, d] product with bias (the shape of the null's biggest
    product), timed now: the best rate this machine gives the null's arithmetic. Best of 3 rounds."""
    x, w, b = torch.randn(rows, W), torch.randn(d, W), torch.randn(d)
    torch.addmm(b, x, w.T)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.addmm(b, x, w.T)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 2 * rows * W * d / best / 1e9


def flop_counts(model, tok, sents, L: int) -> dict:
    """Arithmetic of the bare forward vs an exact null, from the shapes alone (2 FLOPs per multiply-add).

    bare: every layer and the MLM head at every padded token (length-sorted batches of BATCH).
    per_set: what an exact null cannot skip, per neuron set: block L's MLP output projection at the
    read token; block L+1's MLP output projection at EVERY token (`every`: a change at the read token
    reaches every token through attention, and the LayerNorm after that MLP needs each token's full
    output); the read token's own projections in block L+1 and in the last block; blocks in between
    in full; the head's transform and two logits (`read`). Smaller products (attention scores, the
    per-text vectors of helpers.fast) are left out, so this is a floor, not our path's exact count.
    """
    cfg = model.config
    d, W, V, nl = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    lengths = sorted(len(tok(s)["input_ids"]) for s in sents)
    layer = 4 * d * d + 2 * d * W
    bare = 0
    for i in range(0, len(lengths), BATCH):
        b = lengths[i: i + BATCH]
        bare += len(b) * max(b) * (nl * layer + d * d + d * V) + nl * 2 * len(b) * max(b) ** 2 * d
    last = nl - 1
    read = d * W + d * d + 2 * d                                     # block L's output projection, the head
    every = 0
    if L < last:
        read += layer                                                # the last block at the read token
        if L + 1 < last:
            every = sum(lengths) * (d * W + (last - L - 2) * layer)
            read += 4 * d * d + d * W                                # block L+1 at the read token, W_out aside
    return dict(bare=2 * bare, every=2 * every, read=2 * len(lengths) * read,
                per_set=2 * (every + len(lengths) * read))


def flops(f: dict, L: int, n_sets: int) -> str:
    """flop_counts' result f as the line under the table."""
    return (f"exact-null arithmetic at layer {L}: {f['per_set'] / 1e9:.2f} GFLOP per set (every token "
            f"{f['every'] / 1e9:.2f}, read tokens {f['read'] / 1e9:.2f}); the bare forward "
            f"{f['bare'] / 1e9:.0f} GFLOP; {n_sets} sets = {n_sets * f['per_set'] / f['bare']:.1f}x a bare "
            f"forward in FLOPs")


def _has_verbose(fn) -> bool:
    import inspect
    return "verbose" in inspect.signature(fn).parameters


def tl_rows(name: str, L: int, args) -> list[dict]:
    """Row (d), run in bench/.venv by bench/tl_capture.py; 'unavailable: <reason>' when it cannot run."""
    if args.no_tl:
        return [dict(key="d", what="(d) TransformerLens run_with_cache", unavailable="skipped (--no-tl)")]
    py = ROOT / "bench" / ".venv" / "bin" / "python"
    if not py.exists():
        return [dict(key="d", what="(d) TransformerLens run_with_cache",
                     unavailable="bench/.venv missing; run: bash bench/setup_tl.sh")]
    cmd = [str(py), str(ROOT / "bench" / "tl_capture.py"), "--model", name, "--layer", str(L),
           "--threads", str(args.threads), "--repeats", str(args.repeats)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ})
    except subprocess.TimeoutExpired:
        return [dict(key="d", what="(d) TransformerLens run_with_cache", unavailable="timed out after 30 min")]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        err = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return [dict(key="d", what="(d) TransformerLens run_with_cache", unavailable=err[:160])]
    out = json.loads(lines[-1])
    if "unavailable" in out:
        return [dict(key="d", what="(d) TransformerLens run_with_cache", unavailable=out["unavailable"])]
    note = f"{out['versions']}; TL vs ours max |diff| {out['max_abs_diff']:.1e}"
    return [dict(key="d1", what=f"(d) Part 1 capture at layer {L}, ours (TL's process)", sec=out["ours"],
                 ratio=out["ours_ratio"], mem=out["ours_mem"], target=None, note=""),
            dict(key="d2", what="(d) same capture, TransformerLens run_with_cache", sec=out["tl"],
                 ratio=out["tl_ratio"], mem=out["tl_mem"], target=None, note=note)]


# --- the table ---------------------------------------------------------------------------------

def verdict(r, rows) -> str:
    if r["key"] == "d2":
        ours = next((x for x in rows if x["key"] == "d1"), None)
        return "" if ours is None else ("ok (ours faster)" if ours["ratio"] <= r["ratio"] else "MISSED")
    if r.get("target") is None:
        return ""
    return "ok" if r["ratio"] <= r["target"] else "MISSED"


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'step':<62} {'median s':>9} {'x bare':>8} {'target':>8} {'peak MB':>8}  verdict / note")
    print("(x bare: median over runs of the step's time / the bare forwards timed just before and after it)")
    print("-" * 120)
    for r in rows:
        if "unavailable" in r:
            print(f"{r['what']:<62} unavailable: {r['unavailable']}")
            continue
        tgt = f"<={r['target']:.3g}" if r.get("target") is not None else ""
        v = verdict(r, rows)
        note = "; ".join(x for x in (v, r.get("note", "")) if x)
        print(f"{r['what']:<62} {r['sec']:>9.3f} {r['ratio']:>8.3f} {tgt:>8} {r['mem']:>8.0f}  {note}")
    by = {r["key"]: r for r in rows if "sec" in r}
    if "b1" in by and "b2" in by:
        print(f"  (b) one pass is {by['b2']['ratio'] / by['b1']['ratio']:.1f}x faster than one pass per layer")
    if "c1" in by and "c2" in by:
        print(f"  (c) the fast null is {by['c2']['ratio'] / by['c1']['ratio']:.1f}x faster than the naive one")
    if "c1" in by and "flops" in by["c1"]:
        print(f"  (c) {by['c1']['flops']}")
    if "c1" in by and "parts" in by["c1"]:
        print(f"  (c) {by['c1']['parts']}")
    if "c1" in by and "bound" in by["c1"]:
        b, c1 = by["c1"]["bound"], by["c1"]
        bare = c1["sec"] / c1["ratio"]                 # the bare forwards timed around the null
        print(f"  (c) bound: at this run's peak fp32 product rate ({b['peak']:.0f} GFLOP/s, one {b['shape']} "
              f"product) that arithmetic alone would take {b['sec']:.0f} s for {b['draws']} sets = "
              f"{b['sec'] / bare:.1f}x the bare forwards timed around the null ({bare:.2f} s), "
              f"with nothing else costing anything")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="bert-base,stand-in", help="comma-separated: bert-base, stand-in")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per row; the median is shown")
    ap.add_argument("--draws", type=int, default=1000, help="random neuron sets in the null (c)")
    ap.add_argument("--null-repeats", type=int, default=3, help="runs of the fast null (c); the median is shown")
    ap.add_argument("--naive-sample", type=int, default=3, help="sets timed on the naive side of (c)")
    ap.add_argument("--layer", type=int, default=None, help="layer L (default: the lecture's, 9 / 4)")
    ap.add_argument("--rows", default="abcd", help="which rows besides the bare forward (default abcd)")
    ap.add_argument("--no-tl", action="store_true", help="skip row (d)")
    ap.add_argument("--check", action="store_true", help="also compare fast and naive null values")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at start; medians of {args.repeats} runs")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        title, rows = bench_model(name, args)
        print_table(title, rows)
    import resource
    print(f"\nprocess peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f} at the end (other work on the machine adds noise)")


if __name__ == "__main__":
    main()
