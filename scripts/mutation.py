"""Mutation testing of the exercise checks: does each check fail every wrong version of its reference solution?

    python scripts/mutation.py                 the score table, every exercise (make mutation)
    python scripts/mutation.py --exercise b e  some exercises
    python scripts/mutation.py --show          also each mutant's line, change and verdict

A mutant is the exercise cell of a solution notebook (notebooks/*.ipynb) with ONE change inside its solution
region, made with the standard `ast` module by these operators (cosmic-ray's and mutmut's usual set):
a variable replaced by another of the function's own (a parameter or a local: `train` for `test`), an
attribute replaced by another the cell reads (`.pvalue` for `.statistic`, `.start` for `.end`), binary and
augmented operators swapped (+ -, * /, & |, ...), comparisons swapped (< <=, == !=, in / not
in, ...), and/or swapped, a unary operator removed, a number moved by +1 and -1, a boolean flipped, a
string changed, a statement replaced by `pass`, a returned value replaced by None, two positional
arguments swapped, a keyword or the last positional argument dropped, a `for` loop given nothing to loop
over, a subscript, a no-argument method call (`.clone()`, `.detach()`, ...) or a `with` wrapper removed,
and a try/finally flattened (the finally block run only when the body succeeds).

Each mutant runs through its check on the stand-in. It is KILLED when the check does not print a tick (a
named mistake, a "differs" line, the student's error, "cannot tell"). A mutant that passes is EQUIVALENT
when it is shown to give the same result as the reference: every call the check made returns the same
value (exactly) with the same side effects, on the stand-in and again on a second model or a second set of
inputs (a 4-layer random BERT; other seeds and data for the exercises without a model). Anything else
SURVIVES: a wrong answer the check passes. The score is killed / (mutants - equivalent); the goal is 100%.
A check that crashes on a mutant (CheckFailed) is counted apart: the goal there is none.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import torch
from scipy import stats
from statsmodels.stats.multitest import fdrcorrection
from transformers import BertConfig, BertForMaskedLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import helpers  # noqa: E402
from helpers import check  # noqa: E402
from helpers.arch import mlp_module_name  # noqa: E402
from helpers.check import _guard  # noqa: E402
from helpers.check._report import CheckFailed, Mistake, NotDone, StudentError  # noqa: E402
from helpers.hooks import get_module  # noqa: E402

# exercise -> (solution notebook, the names the cell defines, how the check is called with them)
EXERCISES = {
    "a": ("01_find_neurons.ipynb", lambda ns, m, t: check.target_position(ns["target_position"], t)),
    "b": ("01_find_neurons.ipynb", lambda ns, m, t: check.capture_mlp(ns["capture_mlp"], m, t)),
    "c": ("01_find_neurons.ipynb", lambda ns, m, t: check.paired_test(ns["paired_test"])),
    "d": ("02_predict_pronouns.ipynb", lambda ns, m, t: check.mask_logit_diff(ns["mask_logit_diff"], m, t)),
    "e": ("03_lesion_neurons.ipynb", lambda ns, m, t: check.ablated_logit_diff(ns["ablated_logit_diff"], m, t)),
    "f": ("04_controls.ipynb", lambda ns, m, t: check.random_null(ns["random_sets"], ns["permutation_p"])),
    "g": ("04_controls.ipynb", lambda ns, m, t: check.heldout(ns["heldout"])),
    "h": ("06_contrasts.ipynb", lambda ns, m, t: check.own_contrast(ns["my_own_contrast"], m, t)),
}
TIMEOUT_S = 60
MEMO: dict = {}            # the checks' references per model, computed once (helpers.check._guard.remembered)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def namespace() -> dict:
    """What the notebooks' setup cells have defined when an exercise cell runs."""
    return {"torch": torch, "np": np, "helpers": helpers, "check": check, "get_module": get_module,
            "mlp_module_name": mlp_module_name, "stats": stats, "fdrcorrection": fdrcorrection}


def exercise_cell(label: str) -> tuple[str, set[int]]:
    """The exercise cell's source and the line numbers (1-based) inside its solution regions."""
    nb = nbformat.read(ROOT / "notebooks" / EXERCISES[label][0], as_version=4)
    src = next(c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"# exercise: ({label})"))
    inside, on = set(), False
    for i, line in enumerate(src.splitlines(), 1):
        if line.strip() == BEGIN:
            on = True
        elif line.strip() == END:
            on = False
        elif on:
            inside.add(i)
    return src, inside


# --- the operators -----------------------------------------------------------------------------------

BINOPS = {ast.Add: [ast.Sub, ast.Mult], ast.Sub: [ast.Add], ast.Mult: [ast.Div, ast.Add], ast.Div: [ast.Mult, ast.FloorDiv],
          ast.FloorDiv: [ast.Div], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult], ast.BitAnd: [ast.BitOr],
          ast.BitOr: [ast.BitAnd], ast.BitXor: [ast.BitOr], ast.MatMult: [ast.Mult]}
CMPOPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt], ast.GtE: [ast.Gt, ast.LtE],
          ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is], ast.In: [ast.NotIn],
          ast.NotIn: [ast.In]}


def _docstrings(tree) -> set[int]:
    """id() of the Constant nodes that are docstrings (left alone)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            out.add(id(node.body[0].value))
    return out


def _scopes(tree) -> dict[int, list[str]]:
    """id() of each Name node read inside a function -> the other local names of that function (its
    parameters and the names it assigns), the candidates of variable replacement."""
    out = {}
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))]:
        args = fn.args
        local = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        local += [n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        local = list(dict.fromkeys(local))
        for n in ast.walk(fn):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in local:
                out[id(n)] = [x for x in local if x != n.id]
    return out


def _attributes(tree) -> dict[int, list[str]]:
    """id() of each attribute read -> the other attribute names of its kind the cell reads (methods it calls,
    or values it reads): the candidates of attribute replacement."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    reads = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load)]
    kinds = {True: sorted({n.attr for n in reads if id(n) in called}),
             False: sorted({n.attr for n in reads if id(n) not in called})}
    return {id(n): [a for a in kinds[id(n) in called] if a != n.attr] for n in reads}


def _edits(node, docs: set[int], scopes: dict, attrs: dict) -> list[tuple[str, object]]:
    """(description, edit) for every mutation of `node` itself; edit(node) returns the replacement node (or a
    list of statements)."""
    out = []
    for other in scopes.get(id(node), []):
        out.append((f"variable {node.id} -> {other}", lambda n, other=other: ast.Name(id=other, ctx=ast.Load())))
    for other in attrs.get(id(node), []):
        out.append((f".{node.attr} -> .{other}", lambda n, other=other: _set(n, attr=other)))
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        for new in BINOPS.get(type(node.op), []):
            out.append((f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: _set(n, op=new())))
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in CMPOPS.get(type(op), []):
                out.append((f"{type(op).__name__} -> {new.__name__}",
                            lambda n, i=i, new=new: _set(n, ops=n.ops[:i] + [new()] + n.ops[i + 1:])))
    if isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append((f"{type(node.op).__name__} -> {new.__name__}", lambda n, new=new: _set(n, op=new())))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        out.append((f"{type(node.op).__name__} removed", lambda n: n.operand))
    if isinstance(node, ast.Constant) and id(node) not in docs:
        v = node.value
        if isinstance(v, bool):
            out.append((f"{v} -> {not v}", lambda n: ast.Constant(not n.value)))
        elif isinstance(v, (int, float)):
            for d in (1, -1):
                out.append((f"{v!r} -> {v + d!r}", lambda n, d=d: ast.Constant(n.value + d)))
        elif isinstance(v, str):
            out.append((f"string {v[:20]!r} changed", lambda n: ast.Constant("XX" + n.value + "XX")))
    if isinstance(node, ast.Return) and node.value is not None:
        out.append(("return None", lambda n: _set(n, value=ast.Constant(None))))
    if isinstance(node, ast.Call):
        for i in range(len(node.args) - 1):
            out.append((f"arguments {i} and {i + 1} swapped", lambda n, i=i: _set(
                n, args=n.args[:i] + [n.args[i + 1], n.args[i]] + n.args[i + 2:])))
        for i, kw in enumerate(node.keywords):
            if kw.arg is not None:
                out.append((f"keyword {kw.arg}= dropped", lambda n, i=i: _set(n, keywords=n.keywords[:i] + n.keywords[i + 1:])))
        if node.args:
            out.append(("last positional argument dropped", lambda n: _set(n, args=n.args[:-1])))
        if isinstance(node.func, ast.Attribute) and not node.args and not node.keywords:
            out.append((f".{node.func.attr}() removed", lambda n: n.func.value))
    if isinstance(node, ast.Subscript):
        out.append(("subscript removed", lambda n: n.value))
    if isinstance(node, ast.For):
        out.append(("loop over nothing", lambda n: _set(n, iter=ast.List(elts=[], ctx=ast.Load()))))
    if isinstance(node, ast.With):
        out.append(("with removed", lambda n: n.body))
    if isinstance(node, ast.Try) and node.finalbody and not node.handlers:
        out.append(("try/finally flattened", lambda n: n.body + n.finalbody))
    if isinstance(node, ast.stmt) and not isinstance(node, (ast.Pass, ast.FunctionDef)):
        out.append(("statement removed", lambda n: ast.Pass()))
    return out


def _set(node, **fields):
    for k, v in fields.items():
        setattr(node, k, v)
    return node


def _replace(tree, target_index: int, edit):
    """Apply `edit` to the node at walk position `target_index` of a copy of `tree`; the new tree."""
    tree = copy.deepcopy(tree)
    nodes = list(ast.walk(tree))
    target = nodes[target_index]
    new = edit(target)
    if new is target:
        return tree
    for parent in nodes:
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list) and any(v is target for v in value):
                i = next(k for k, v in enumerate(value) if v is target)
                value[i: i + 1] = new if isinstance(new, list) else [new]
                return tree
            if value is target:
                setattr(parent, name, new[0] if isinstance(new, list) else new)
                return tree
    raise AssertionError("mutated node not found")     # pragma: no cover


@dataclass
class Mutant:
    label: str
    line: int
    change: str
    source: str
    verdict: str = ""              # killed / equivalent / survived / crashed
    detail: str = ""


def mutants(label: str) -> list[Mutant]:
    """Every mutant of exercise `label`'s solution regions (distinct sources only)."""
    src, inside = exercise_cell(label)
    tree = ast.parse(src)
    docs, scopes, attrs = _docstrings(tree), _scopes(tree), _attributes(tree)
    seen, out = {ast.unparse(tree)}, []
    for index, node in enumerate(ast.walk(tree)):
        if getattr(node, "lineno", None) not in inside:
            continue
        for change, edit in _edits(node, docs, scopes, attrs):
            try:
                new = ast.unparse(ast.fix_missing_locations(_replace(tree, index, edit)))
                compile(new, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue
            if new not in seen:
                seen.add(new)
                out.append(Mutant(label, node.lineno, change, new))
    return out


# --- running them ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _time_limit(seconds: int):
    def stop(signum, frame):
        raise TimeoutError(f"ran over {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def judge(label: str, source: str, model, tok) -> tuple[str, str, list]:
    """Run `source` (an exercise cell) through its check: (outcome, detail, trace of the calls)."""
    ns = namespace()
    _guard.TRACE = trace = []
    _guard.MEMO = MEMO.setdefault(id(model), {})
    out = io.StringIO()
    try:
        with _time_limit(TIMEOUT_S), contextlib.redirect_stdout(out):
            exec(compile(source, f"<exercise {label}>", "exec"), ns)
            EXERCISES[label][1](ns, model, tok)
        printed = out.getvalue().strip()
        return ("passed" if printed.startswith("✓") else "cannot_tell"), printed[:120], trace
    except Mistake as e:
        return "mistake", f"{e.key or 'differs'}", trace
    except (StudentError, NotDone) as e:
        return "error", type(getattr(e, "error", e)).__name__, trace
    except CheckFailed as e:
        return "crashed", str(e)[:160], trace
    except TimeoutError:
        return "timeout", "", trace
    except Exception as e:  # noqa: BLE001  the mutant broke at definition time (exec)
        return "error", type(e).__name__, trace
    finally:
        _guard.TRACE = _guard.MEMO = None


def _canon(x):
    """A value from a trace, comparable exactly (arrays, tensors, numbers, strings, nested)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):
        return tuple(_canon(v) for v in x)
    if isinstance(x, (np.ndarray, np.generic)):
        return ("array", x.shape, str(x.dtype), np.asarray(x).tobytes())
    return ("value", type(x).__name__, repr(x))


def same_trace(a: list, b: list) -> bool:
    """Every call returned the same value (exactly) with the same side effects."""
    return len(a) == len(b) and all(x[0] == y[0] and x[2] == y[2] and _canon(x[1]) == _canon(y[1]) for x, y in zip(a, b))


@dataclass
class Models:
    """The stand-in, and the second model (a 4-layer random BERT, wide initial weights) with the bert tokenizer."""
    main: tuple
    second: tuple = field(default=None)


def random_bert(tokenizer, seed: int = 1, layers: int = 4):
    """A small random BERT masked LM with weights 10x the usual init, so that ablations move its logits
    measurably (with the usual 0.02 the checks rightly say they cannot tell)."""
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=128, initializer_range=0.2)
    m = BertForMaskedLM(cfg).eval()
    m.name_or_path = f"random-bert-{layers}"
    return m


@contextlib.contextmanager
def second_inputs(label: str):
    """Other seeds and data for the exercises the check runs without a model."""
    mods = {"a": "position", "c": "ttest", "f": "null", "g": "heldout"}
    if label not in mods:
        yield
        return
    mod = sys.modules[f"helpers.check.{mods[label]}"]
    saved = dict(vars(mod))
    if label == "c":
        mod.SEED = 12
    elif label == "g":
        mod.SEED = 4
    elif label == "f":
        mod.SETS = [(40, 5, 350, 3), (40, 5, 350, 4), (40, 5, 350, 99), (9, 2, 250, 8)]
        mod.P_CASES = [(0.3, np.array([0.3, 0.1, 0.9, 0.3, -0.2])), (5.0, np.array([1.0, 2.0, 0.5])),
                       (-0.5, np.array([0.0, -0.5, -1.0, 2.0, 0.4, 0.1])), (0.7, np.array([0.7, 0.7, 0.2, 0.9]))]
    elif label == "a":
        base = mod.cases
        mod.cases = lambda tok: [(s.replace("bus", "train").replace("ride", "lift"), w) for s, w in base(tok)]
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(mod, k, v)


def classify(m: Mutant, models: Models, references: dict) -> Mutant:
    """Set m.verdict: killed / crashed / equivalent / survived."""
    outcome, detail, trace = judge(m.label, m.source, *models.main)
    if outcome == "crashed":
        m.verdict, m.detail = "crashed", detail
        return m
    if outcome != "passed":
        m.verdict, m.detail = "killed", f"{outcome}: {detail}"
        return m
    ref_main, ref_second = references[m.label]
    with second_inputs(m.label):
        out2, detail2, trace2 = judge(m.label, m.source, *models.second)
    if trace and same_trace(trace, ref_main) and out2 == "passed" and same_trace(trace2, ref_second):
        m.verdict, m.detail = "equivalent", "same results on both models"
    else:
        m.verdict = "survived"
        m.detail = "differs on the stand-in's inputs" if not same_trace(trace, ref_main) else \
            f"differs on the second model ({out2}: {detail2})"
    return m


def reference_traces(label: str, models: Models) -> tuple[list, list]:
    src, _ = exercise_cell(label)
    o1, d1, t1 = judge(label, src, *models.main)
    with second_inputs(label):
        o2, d2, t2 = judge(label, src, *models.second)
    if o1 != "passed" or o2 != "passed":
        raise SystemExit(f"({label}): the reference solution does not pass its check ({o1}: {d1} / {o2}: {d2})")
    return t1, t2


def score(labels, models: Models, progress=None) -> dict[str, list[Mutant]]:
    """{label: [classified mutants]}."""
    out = {}
    for label in labels:
        refs = {label: reference_traces(label, models)}
        ms = mutants(label)
        for i, m in enumerate(ms):
            classify(m, models, refs)
            if progress:
                progress(label, i + 1, len(ms))
        out[label] = ms
    return out


def table(results: dict[str, list[Mutant]]) -> str:
    rows = ["exercise  mutants  killed  equivalent  survived  crashed  score"]
    for label, ms in results.items():
        n = {v: sum(m.verdict == v for m in ms) for v in ("killed", "equivalent", "survived", "crashed")}
        live = len(ms) - n["equivalent"]
        rows.append(f"({label})       {len(ms):5d}  {n['killed']:6d}  {n['equivalent']:10d}  {n['survived']:8d}  "
                    f"{n['crashed']:7d}  {100.0 * n['killed'] / live if live else 100.0:5.1f}%")
    return "\n".join(rows)


def load_models(main: str = "stand-in") -> Models:
    """The model the checks judge on ("stand-in", or "random" for a 5-layer random BERT: 20x faster, for the
    test suite) and the second model equivalence is shown on (a 4-layer random BERT)."""
    first = helpers.load_mlm("stand-in", verbose=False)
    if main == "random":
        first = (random_bert(first[1], seed=0, layers=5), first[1])
    return Models(first, (random_bert(first[1]), first[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/mutation.py", description=__doc__.split("\n")[0])
    ap.add_argument("--exercise", nargs="+", choices=sorted(EXERCISES), default=sorted(EXERCISES))
    ap.add_argument("--show", action="store_true", help="print every mutant's line, change and verdict")
    ap.add_argument("--model", choices=("stand-in", "random"), default="stand-in",
                    help="the model the checks judge on (default: the stand-in; random: a small random BERT)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models = load_models(args.model)
    results = score(args.exercise, models, progress=lambda l, i, n: print(f"\r({l}) {i}/{n}", end="", file=sys.stderr))
    print(file=sys.stderr)
    for label, ms in results.items():
        for m in ms:
            if args.show or m.verdict in ("survived", "crashed"):
                print(f"({label}) line {m.line:3d}  {m.change:40s} {m.verdict:10s} {m.detail}")
    print(table(results))
    return 0 if all(m.verdict in ("killed", "equivalent") for ms in results.values() for m in ms) else 1


if __name__ == "__main__":
    sys.exit(main())
