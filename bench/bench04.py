"""Notebook 04 at lecture speed: its computations, section by section, with fixed-n and sequential p-values.

    python bench/bench04.py                          # the six runs below, one after another (about 25 min)
    python bench/bench04.py --parallel --threads 2   # all six at once, each pinned to its own 2 cores
    python bench/bench04.py --quick                  # a 4-layer, bert-base-wide model and 24 pairs: a smoke run
    python bench/bench04.py --models stand-in        # one model, before and after

Each run calls the helpers functions notebook 04 calls, with its arguments (the same sections, the same
figures drawn and closed, the exercise solutions in place of the student's code), in a fresh process:

    models   bert-base  BertForMaskedLM(BertConfig()), random weights (12 layers x 3072 neurons)
             effect     the same shape and weights, but each layer's "her" set is its 32 neurons whose
                        ablation lowers logit(her) - logit(him) at the cloze [MASK]s most (gradient x
                        activation): every layer has a clear effect, so the sequential rule needs all n
             stand-in   the kit's stand-in (skipped, with a line saying why, where it does not load)
    rules    before     stop_at=None: every lesion test draws all its n_draws (the p-values as before issue 26)
             after      the sequential default (stop once 10 random sets reach the drop)

Printed: one table, seconds per notebook section and in all, the random sets the p-values kept, the sets the
null evaluated (more than kept: a batch's sets after the stop) and its calls, and after/before per model.
--threads K: torch threads per run (default 2). --parallel: the runs at once in subprocesses, each pinned
(os.sched_setaffinity) to its own K cores, in waves where the machine has fewer than K x runs cores.
See bench/README.md ("bench04").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODELS = ("bert-base", "effect", "stand-in")
RULES = ("before", "after")
WORD = "her"
EFFECT_SET = 32        # neurons per layer in the "effect" model's sets
QUICK_LAYERS = 4       # --quick: layers of the bert-base-wide model
QUICK_PAIRS = 24       # --quick: pairs of each contrast (notebook: all 64)
SECTIONS = ("0 selection", "1 criteria", "2 null (f)", "4 modes", "5 dose", "6 layer sweep", "7 [MASK] set",
            "8 held-out (g)")


# --- one run -------------------------------------------------------------------------------------

class Unavailable(Exception):
    """A model that does not load here (printed as a skipped column, not an error)."""


def bert_tokenizer():
    """The bert-base-uncased WordPiece tokenizer: the stand-in's base package ships it; else the HF cache; else a
    built stand-in's folder."""
    from transformers import AutoTokenizer
    from helpers import loading
    try:
        return AutoTokenizer.from_pretrained(loading._base_dir())
    except Exception as e:      # the base package is absent or damaged: try a cached bert-base-uncased
        try:
            return AutoTokenizer.from_pretrained("bert-base-uncased")
        except Exception:
            pass
        try:        # a built stand-in (its tokenizer is bert-base-uncased's, e.g. placed by scripts/device_check.py)
            return AutoTokenizer.from_pretrained(str(loading.standin_dir()))
        except Exception:
            raise Unavailable(f"no bert-base-uncased tokenizer here ({e})") from None


def load(name: str, quick: bool):
    """(model, tokenizer, label)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM
    if name == "stand-in":
        from helpers import loading
        try:
            model, tok = loading.load_mlm("stand-in", verbose=False)
        except Exception as e:
            raise Unavailable(f"the stand-in does not load here: {str(e).splitlines()[0][:160]}") from None
        return model.eval(), tok, "stand-in"
    tok = bert_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=QUICK_LAYERS) if quick else BertConfig()
    model = BertForMaskedLM(cfg).eval()
    model.name_or_path = f"random BERT {cfg.num_hidden_layers}x{cfg.intermediate_size}"
    return model, tok, model.name_or_path


def effect_sets(model, tok, evalset, k: int = EFFECT_SET) -> dict:
    """{layer: bool [width]}: the k neurons of each layer whose zeroing lowers logit(target) - logit(foil) at
    the evalset's [MASK]s most, to first order (post-GELU activation x its gradient, summed over texts)."""
    import numpy as np
    import torch
    from helpers.arch import blocks
    from helpers.readout import word_ids
    acts, hooks = {}, []
    for L, lay in enumerate(blocks(model)):
        def keep(mod, inp, out, L=L):
            out.retain_grad()
            acts[L] = out
        hooks.append(lay.intermediate.register_forward_hook(keep))
    try:
        enc = tok(evalset.texts, return_tensors="pt", padding=True)
        rows, pos = torch.arange(len(evalset)), torch.tensor(evalset.positions)
        t, f = word_ids(tok, [evalset.target, evalset.foil])
        logits = model(**enc).logits[rows, pos]
        (logits[:, t] - logits[:, f]).sum().backward()
    finally:
        for hk in hooks:
            hk.remove()
        model.zero_grad(set_to_none=True)
    out = {}
    for L, a in acts.items():
        score = (a * a.grad)[rows, pos].sum(0).detach().numpy()
        m = np.zeros(score.size, bool)
        m[np.argsort(-score)[:k]] = True
        out[L] = m
    return out


def with_sets(selection, sets: dict, word: str):
    """The selection with `word`'s neurons replaced by sets[layer] (the other word's as they were)."""
    plain = selection.neurons
    selection.neurons = lambda layer, w: sets[layer] if w == word else plain(layer, w)
    return selection


def random_sets(width, size, n, seed=0):
    """Exercise (f)'s solution, as in the notebook."""
    import numpy as np
    rng = np.random.default_rng(seed)
    sets = np.zeros((n, width), dtype=bool)
    for row in sets:
        row[rng.choice(width, size=size, replace=False)] = True
    return sets


def permutation_p(observed, null):
    import numpy as np
    null = np.asarray(null)
    return (1 + np.sum(null >= observed)) / (1 + null.size)


def heldout(acts_a, acts_b, train, test, lesion_drop, q=0.05):
    """Exercise (g)'s solution, as in the notebook."""
    from scipy import stats
    from statsmodels.stats.multitest import fdrcorrection
    res = stats.ttest_rel(acts_a[train], acts_b[train], axis=0)
    her = fdrcorrection(res.pvalue, alpha=q)[0] & (res.statistic < 0)
    return lesion_drop(her, test)


def run_one(name: str, rule: str, quick: bool, threads: int) -> dict:
    """Notebook 04's cells on one model under one rule: {sections: {name: s}, kept, evaluated, calls, ...}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from helpers import controls as C
    from helpers.arch import default_layer
    from helpers.controls import nulls
    from helpers.plots import controls as PC
    from helpers.stats import fmt_p
    from helpers.stimuli import cloze_set, load_contrast, masked_set

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, tokenizer, label = load(name if name != "effect" else "bert-base", quick)
    load_s = time.perf_counter() - t0
    legacy = not hasattr(C, "STOP_AT")      # a checkout from before issue 26: fixed n only, no draws figure
    kw = {"stop_at": None} if rule == "before" and not legacy else {}
    if legacy:
        label += " (helpers before issue 26: fixed n)"
    counts = {"sets": 0, "calls": 0}
    plain_diffs = nulls.Ablator.diffs

    def counting(self, sets):
        donors = len(self._samples) if self.mode == "resample" else 1
        counts["sets"] += len(np.atleast_2d(sets)) * donors
        counts["calls"] += donors
        return plain_diffs(self, sets)
    nulls.Ablator.diffs = counting

    him_her, context = load_contrast("him_her"), load_contrast("him_her_context")
    if quick:
        him_her, context = (replace(c, pairs=c.pairs[:QUICK_PAIRS]) for c in (him_her, context))
    ns, times, kept = {}, {}, []

    def close(fig):
        fig.canvas.draw()
        plt.close(fig)

    def s0():
        LAYER = default_layer(model)
        selection = C.pronoun_selection(model, tokenizer, him_her)
        evalset = cloze_set(tokenizer, WORD)
        if name == "effect":
            ns["effect_sets"] = effect_sets(model, tokenizer, evalset)
            with_sets(selection, ns["effect_sets"], WORD)
        ns.update(LAYER=LAYER, selection=selection, her_neurons=selection.neurons(LAYER, WORD), evalset=evalset)
        selection.summary(LAYER)

    def s1():
        sel, L = ns["selection"], ns["LAYER"]
        crit = C.compare_criteria(sel.acts_a[L], sel.acts_b[L], q=0.05)
        crit.summary()
        close(PC.criteria(crit, sel.model_label, L, where="pronoun"))

    def s2():
        L, ev = ns["LAYER"], ns["evalset"]
        result = C.lesion_test(model, tokenizer, L, ns["her_neurons"], ev, n_draws=1000, seed=0,
                               label="'her' neurons", **kw)
        result.summary()
        close(PC.null_distribution(result))
        ab = C.Ablator(model, tokenizer, L, ev.texts, ev.positions, ev.target, ev.foil)
        mine = (ab.clean - ab.diffs(random_sets(ab.width, result.n_neurons, 200, seed=1))).mean(1)
        fmt_p(permutation_p(result.observed, mine))
        result.table(width=58)
        ns["result"] = result
        kept.extend([result.n_draws, 200])

    def s4():
        by_mode = C.compare_modes(model, tokenizer, ns["LAYER"], ns["her_neurons"], ns["evalset"], contrast=him_her,
                                  n_draws=200, label="'her' neurons", **kw)
        [r.short() for r in by_mode.values()]
        close(PC.modes(by_mode))
        kept.extend(r.n_draws for r in by_mode.values())

    def s5():
        dose = C.dose_response(model, tokenizer, ns["selection"], ns["LAYER"], ns["evalset"], n_draws=100, seed=0,
                               **kw)
        dose.summary()
        close(PC.dose_response(dose))
        kept.extend([len(n) for n in dose.null])

    def s6():
        selection = ns["selection"]
        n_draws = max(200, 25 * len(selection.layers))
        sweep = C.layer_sweep(model, tokenizer, selection, ns["evalset"], n_draws=n_draws, seed=0, **kw)
        mask_selection = C.mask_selection(model, tokenizer, context)
        if name == "effect":
            with_sets(mask_selection, ns["effect_sets"], WORD)
        mask_sweep = C.layer_sweep(model, tokenizer, mask_selection, ns["evalset"], n_draws=0)
        sweep.summary()
        close(PC.layer_sweep(sweep, mask_sweep))
        if hasattr(PC, "draws_per_layer"):
            close(PC.draws_per_layer(sweep))
        ns.update(mask_selection=mask_selection, sweep=sweep)
        kept.extend(r.n_draws for r in sweep.results.values() if r is not None)

    def s7():
        L, sel, msel = ns["LAYER"], ns["selection"], ns["mask_selection"]
        mask_her = msel.neurons(L, WORD)
        msel.summary(L)
        C.set_overlap(ns["her_neurons"], mask_her, ("pronoun", "[MASK]")).summary()
        mask_result = C.lesion_test(model, tokenizer, L, mask_her, ns["evalset"], n_draws=1000, seed=0,
                                    label="'her' neurons", **kw)
        close(PC.selection_comparison(sel, msel, L, WORD, {"pronoun": ns["result"], "[MASK]": mask_result}))
        kept.append(mask_result.n_draws)

    def s8():
        L, sel, msel = ns["LAYER"], ns["selection"], ns["mask_selection"]
        ho = {where: C.heldout_selection(s.acts_a[L], s.acts_b[L], k=5, seed=0)
              for where, s in (("pronoun", sel), ("[MASK]", msel))}
        [h.summary() for h in ho.values()]
        context_masks = masked_set(tokenizer, context, WORD)

        def lesion_drop(neurons, pairs):
            r = C.lesion_test(model, tokenizer, L, neurons, context_masks.subset(pairs), n_draws=200, seed=0,
                              label="'her' neurons", **kw)
            kept.append(r.n_draws)
            return r
        train, test = C.kfold_pairs(len(context_masks), k=2, seed=0)[0]
        a, b = msel.acts_a[L], msel.acts_b[L]
        heldout(a, b, train, train, lesion_drop).short()
        heldout(a, b, train, test, lesion_drop).short()
        ho_lesion = C.heldout_lesion(model, tokenizer, msel, L, context_masks, k=5, seed=0, n_draws=100, **kw)
        ho_pronoun = C.heldout_lesion(model, tokenizer, sel, L, context_masks, k=5, seed=0, n_draws=100, **kw)
        ho_lesion.summary()
        ho_pronoun.summary()
        close(PC.heldout(ho["[MASK]"], ho_lesion, msel.model_label, L))
        kept.extend(r.n_draws for h in (ho_lesion, ho_pronoun) for r in h.in_sample + h.held_out if r is not None)

    for sec, fn in zip(SECTIONS, (s0, s1, s2, s4, s5, s6, s7, s8)):
        t = time.perf_counter()
        fn()
        times[sec] = time.perf_counter() - t
        print(f"  .. {name}/{rule}: {sec} {times[sec]:.1f} s", file=sys.stderr, flush=True)
    sweep = ns["sweep"]
    return dict(model=name, rule=rule, label=label, load_s=load_s, sections=times, kept=int(sum(kept)),
                evaluated=counts["sets"], calls=counts["calls"], layers=len(sweep.layers),
                sweep_draws={str(L): r.n_draws for L, r in sweep.results.items() if r is not None},
                sweep_max=max([getattr(r, "max_draws", None) or r.n_draws for r in sweep.results.values()
                               if r is not None], default=0),
                her=int(ns["her_neurons"].sum()), threads=threads)


# --- many runs, one table -----------------------------------------------------------------------------

def child(args) -> None:
    if args.cores:
        os.sched_setaffinity(0, [int(c) for c in args.cores.split(",")])
    name, rule = args.one.split(":")
    try:
        out = run_one(name, rule, args.quick, args.threads)
    except Unavailable as e:
        out = dict(model=name, rule=rule, skipped=str(e))
    print("RESULT " + json.dumps(out), flush=True)


def spawn(run: str, args, cores=None) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", run, "--threads", str(args.threads)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--cores", ",".join(map(str, cores))] if cores else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def collect(p: subprocess.Popen, run: str) -> dict:
    out, _ = p.communicate()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    name, rule = run.split(":")
    return dict(model=name, rule=rule, skipped=f"the run failed (exit {p.returncode}; its error is above)")


def run_all(args) -> list[dict]:
    runs = [f"{m}:{r}" for m in args.models for r in args.rules]
    if not args.parallel:
        return [collect(spawn(r, args), r) for r in runs]
    cores = sorted(os.sched_getaffinity(0))
    slots = max(1, len(cores) // args.threads)
    if slots < len(runs):
        print(f"{len(cores)} cores for {len(runs)} runs of {args.threads}: in waves of {slots}", flush=True)
    results = []
    for w in range(0, len(runs), slots):
        wave = runs[w: w + slots]
        procs = [(r, spawn(r, args, cores[i * args.threads: (i + 1) * args.threads])) for i, r in enumerate(wave)]
        print("  running at once: " + "; ".join(f"{r} on cores {cores[i * args.threads: (i + 1) * args.threads]}"
                                             for i, (r, _) in enumerate(procs)), flush=True)
        results += [collect(p, r) for r, p in procs]
    return results


def table(results: list[dict]) -> str:
    """Sections down, runs across: each model's before and after, and after/before where both ran."""
    done = [r for r in results if "skipped" not in r]
    models = list(dict.fromkeys(r["model"] for r in done))
    by = {(r["model"], r["rule"]): r for r in done}
    cols = []                                    # (header, function of a getter -> text)
    for m in models:
        b, a = by.get((m, "before")), by.get((m, "after"))
        for rule, r in (("before", b), ("after", a)):
            if r is not None:
                cols.append((f"{m} {rule}", lambda get, fmt, r=r: fmt(get(r))))
        if a is not None and b is not None:
            cols.append(("after/before", lambda get, fmt, a=a, b=b: f"{get(a) / get(b):.2f}" if get(b) else "-"))
    rows = [["section"] + [h for h, _ in cols]]

    def line(label, get, fmt):
        rows.append([label] + [f(get, fmt) for _, f in cols])
    for sec in SECTIONS:
        line(sec, lambda r, s=sec: r["sections"][s], lambda v: f"{v:.1f}")
    line("total (s)", lambda r: sum(r["sections"].values()), lambda v: f"{v:.1f}")
    line("draws kept", lambda r: r["kept"], str)
    line("sets evaluated", lambda r: r["evaluated"], str)
    line("null calls", lambda r: r["calls"], str)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]

    def fmt(row):
        return " | ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
    out = [fmt(rows[0]), "-+-".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
    for r in done:
        out.append(f"{r['model']} {r['rule']}: {r['label']}, {r['layers']} layers, {r['her']} '{WORD}' neurons at the "
                   f"notebook's layer; load {r['load_s']:.1f} s (not in the total); sweep draws per layer (up to "
                   f"{r['sweep_max']}): {list(r['sweep_draws'].values())}")
    for r in results:
        if "skipped" in r:
            out.append(f"{r['model']} {r['rule']}: skipped, {r['skipped']}")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES,
                    help="before (stop_at=None: all n draws) and/or after (the sequential default)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run (default 2)")
    ap.add_argument("--parallel", action="store_true", help="the runs at once, each pinned to its own --threads cores")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_LAYERS} layers (bert-base width) and {QUICK_PAIRS} pairs: a smoke run")
    ap.add_argument("--one", help=argparse.SUPPRESS)       # MODEL:RULE, run by the parent in a fresh process
    ap.add_argument("--cores", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be a positive integer, got {args.threads}")
    if args.one:
        return child(args)
    t = time.perf_counter()
    print(f"notebook 04, {'--quick, ' if args.quick else ''}{args.threads} threads per run"
          f"{', in parallel' if args.parallel else ', one run at a time'}; load {os.getloadavg()[0]:.2f}", flush=True)
    results = run_all(args)
    print(table(results))
    print(f"wall {time.perf_counter() - t:.0f} s; load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
