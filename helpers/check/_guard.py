"""What a check protects: the model and tokenizer as they were before the student's code ran.

    Snapshot(model, tokenizer)    parameters and buffers (copies), modules, train/eval mode, grad mode, hooks
                                  (by handle id), model.config, the tokenizer's settings
      .changes()                  [(key, sentence)] of what differs now, named for the student
      .restore()                  put every one of those back (hooks added since: removed by id; library
                                  hooks, and hooks that were there before, are left alone)
    judging(exercise, model, tokenizer)   the context every check runs in: a Judge whose .call runs the
                                  student's function and names a change it made as the mistake; on exit the
                                  snapshot is restored whatever happened, the outcome recorded, and an error
                                  of the check's own becomes one line (CheckFailed)
"""
from __future__ import annotations

import numpy as np
import torch

from ..hooks import hook_snapshot, hook_table, hooks_attached, library_hook, put_back_hooks, remove_hooks_since
from ._report import CheckFailed, Mistake, NotDone, StudentError, outcome, record, run

TRACE: list | None = None      # a list: every call of a student's function is noted there (scripts/mutation.py)
MEMO: dict | None = None       # a dict: the checks' references are computed once per model (scripts/mutation.py)
TOKENIZER_SETTINGS = ("padding_side", "truncation_side", "model_max_length", "pad_token", "mask_token",
                      "cls_token", "sep_token", "bos_token", "eos_token")
_MISSING = object()


def remembered(key: tuple, compute):
    """compute(), or while MEMO is a dict (mutation testing: hundreds of runs on one unchanged model) the
    value it gave the first time for `key`. Students always get compute()."""
    if MEMO is None:
        return compute()
    if key not in MEMO:
        MEMO[key] = compute()
    return MEMO[key]


def _owner(model, name: str):
    """(module, attribute) holding the parameter/buffer/submodule called `name`."""
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


def _module_of(name: str) -> str:
    return name.rpartition(".")[0] or "the model itself"


class Snapshot:
    """The state a student's function could change (see the module docstring); cheap enough to take per call:
    one CPU copy of the weights."""

    def __init__(self, model=None, tokenizer=None):
        self.model, self.tokenizer = model, tokenizer
        self.grad = torch.is_grad_enabled()
        self.tok = {a: getattr(tokenizer, a, _MISSING) for a in TOKENIZER_SETTINGS} if tokenizer is not None else {}
        self.vocab = len(tokenizer) if tokenizer is not None and hasattr(tokenizer, "__len__") else None
        if model is None:
            return
        self.hooks = hook_snapshot(model)
        self.hook_table = hook_table(model)
        self.modules = dict(model.named_modules())
        self.training = {n: m.training for n, m in self.modules.items()}
        self.forwards = {n: m.__dict__.get("forward", _MISSING) for n, m in self.modules.items()}
        self.tensors = {}
        named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
        copies = remembered(("weights", id(model)), dict)      # reused only while MEMO is on (mutation testing)
        for name, t in named:
            if id(t) not in copies:
                copies[id(t)] = t.detach().to("cpu", copy=True)
            self.tensors[name] = (t, copies[id(t)], t.requires_grad)
        self.config = dict(vars(model.config))
        self.dirty: set[str] = set()
        self.clean = True          # False while a student's call may have changed something not yet checked

    # --- what changed --------------------------------------------------------------------------------
    def changes(self) -> list[tuple[str, str]]:
        """[(key, sentence)] of every change since the snapshot, most serious first."""
        self.clean = False
        out = []
        if self.model is not None:
            out += self._module_changes() + self._tensor_changes() + self._hook_changes() + self._mode_changes()
            cfg = [k for k in set(self.config) | set(vars(self.model.config))
                   if not _same(vars(self.model.config).get(k, _MISSING), self.config.get(k, _MISSING))]
            if cfg:
                out.append(("changed-config", f"your function changed model.config ({', '.join(sorted(cfg)[:3])}); "
                                              f"pass such options to the call (model(**enc, ...)) instead"))
        if not _same(torch.is_grad_enabled(), self.grad):
            out.append(("grad-mode", f"your function turned gradients {'off' if self.grad else 'on'} for the whole "
                                     f"session (torch.set_grad_enabled); use a `with torch.no_grad():` block, "
                                     f"which ends with your function"))
        tok = [a for a, v in self.tok.items() if not _same(getattr(self.tokenizer, a, _MISSING), v)]
        if tok or (self.vocab is not None and len(self.tokenizer) != self.vocab):
            what = ", ".join(f"tokenizer.{a}" for a in tok) or "the tokenizer's vocabulary"
            out.append(("changed-tokenizer", f"your function changed {what}; every later call would tokenize "
                                             f"differently. Pass options to the call (tokenizer(text, ...)) instead"))
        return out

    def _module_changes(self) -> list[tuple[str, str]]:
        now = dict(self.model.named_modules())
        gone = [n for n, m in self.modules.items() if now.get(n) is not m]
        new = [n for n in now if n not in self.modules]
        fwd = [n for n, m in self.modules.items() if m.__dict__.get("forward", _MISSING) is not self.forwards[n]]
        out = []
        if gone or new:
            names = ", ".join((gone or new)[:2])
            out.append(("replaced-module", f"your function replaced or added modules of the model ({names}); "
                                           f"read or edit a module's output with a hook instead"))
        if fwd:
            out.append(("replaced-forward", f"your function replaced the forward method of {fwd[0] or 'the model'}; "
                                            f"use a forward hook, removed in finally:"))
        return out

    def _tensor_changes(self) -> list[tuple[str, str]]:
        changed, replaced, grad = [], [], []
        self.dirty = set()
        for name, (t, saved, req) in self.tensors.items():
            try:
                owner, attr = _owner(self.model, name)
                cur = getattr(owner, attr, None)
            except AttributeError:
                cur = None
            if cur is not t:
                replaced.append(name)
            elif not torch.equal(t.detach().cpu(), saved):
                changed.append(name)
            elif t.requires_grad != req:
                grad.append(name)
            else:
                continue
            self.dirty.add(name)
        out = []
        for names, key, verb in ((changed, "changed-weights", "changed the weights of"),
                                 (replaced, "changed-weights", "replaced the weights of")):
            if names:
                mods = list(dict.fromkeys(_module_of(n) for n in names))
                more = f" (and {len(mods) - 2} more modules)" if len(mods) > 2 else ""
                out.append((key, f"your function {verb} {', '.join(mods[:2])}{more} (the check put them back): "
                                 f"read or edit a module's OUTPUT with a forward hook instead, which leaves the "
                                 f"model as it was"))
        if grad:
            out.append(("requires-grad", f"your function changed requires_grad of {grad[0]} (the check put it "
                                         f"back); use `with torch.no_grad():` instead"))
        return out

    def _hook_changes(self) -> list[tuple[str, str]]:
        added, now = self._added_hooks(), hook_snapshot(self.model)
        gone = [name for (name, _), (_, hooks, _) in self.hook_table.items() if any(h not in now for h in hooks)]
        if gone:
            return [("removed-hooks", f"your function removed hooks it did not add (on {gone[0]}; the check put them "
                                      f"back): they may be transformers' own or another library's. Remove only "
                                      f"your own hook, with its handle (handle.remove()), never by clearing "
                                      f"module._forward_hooks")]
        if not added:
            return []
        return [("hook-left", f"your hook is still attached after your function returned (on {added[0]}; the check "
                              f"removed it): every later forward pass would run it. Remove it before you return, "
                              f"in a finally: block (handle.remove()), so that it goes even when the forward pass "
                              f"fails")]

    def _added_hooks(self) -> list[str]:
        """Where hooks were added since the snapshot (library hooks left out)."""
        out = []
        for name, m in [(n or "<root>", m) for n, m in self.model.named_modules()]:
            for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
                if any(h not in self.hooks and not library_hook(fn) for h, fn in getattr(m, kind, {}).items()):
                    out.append(name)
        g = torch.nn.modules.module
        for kind in ("_global_forward_hooks", "_global_forward_pre_hooks"):
            if any(h not in self.hooks and not library_hook(fn) for h, fn in getattr(g, kind, {}).items()):
                out.append("<global>")
        return out

    def _mode_changes(self) -> list[tuple[str, str]]:
        flipped = [n for n, m in self.modules.items() if m.training != self.training[n]]
        if not flipped:
            return []
        now = "train" if self.model.training else "eval"
        return [("train-mode", f"your function left the model in {now} mode (model.{now}()), which changes every "
                               f"later result{' (dropout is random in train mode)' if now == 'train' else ''}; "
                               f"the check put it back. Leave the mode as you found it")]

    # --- putting it back -----------------------------------------------------------------------------
    def restore(self, checked: bool = False) -> None:
        """Undo every change since the snapshot (idempotent). checked=True: changes() has just run, so only the
        tensors it found changed are compared and copied back."""
        if self.clean and not checked:
            return
        self.clean = checked
        torch.set_grad_enabled(self.grad)
        for a, v in self.tok.items():
            if v is not _MISSING and not _same(getattr(self.tokenizer, a, _MISSING), v):
                try:
                    setattr(self.tokenizer, a, v)
                except (AttributeError, ValueError, TypeError):
                    pass
        if self.model is None:
            return
        for name, m in sorted(self.modules.items(), key=lambda x: x[0].count(".")):
            if name:
                owner, attr = _owner_safe(self.model, self.modules, name)
                if getattr(owner, attr, None) is not m:
                    setattr(owner, attr, m)
        for name, m in self.modules.items():
            f = self.forwards[name]
            if m.__dict__.get("forward", _MISSING) is not f:
                if f is _MISSING:
                    del m.__dict__["forward"]
                else:
                    m.__dict__["forward"] = f
        with torch.no_grad():
            for name, (t, saved, req) in self.tensors.items():
                if checked and name not in self.dirty:
                    continue
                owner, attr = _owner(self.model, name)
                if getattr(owner, attr, None) is not t:
                    if isinstance(t, torch.nn.Parameter):
                        owner._parameters[attr] = t
                    else:
                        owner._buffers[attr] = t
                if not torch.equal(t.detach().cpu(), saved):
                    t.copy_(saved.to(t.device))
                if t.requires_grad != req and t.is_leaf:
                    t.requires_grad_(req)
        remove_hooks_since(self.model, self.hooks)
        put_back_hooks(self.model, self.hook_table)
        for name, m in self.modules.items():
            m.training = self.training[name]
        cfg = vars(self.model.config)
        for k in [k for k in cfg if k not in self.config]:
            del cfg[k]
        for k, v in self.config.items():
            if not _same(cfg.get(k, _MISSING), v):
                cfg[k] = v


def _owner_safe(model, modules: dict, name: str):
    """(parent module, attribute) of submodule `name`, found through the snapshot's own modules."""
    parent, _, attr = name.rpartition(".")
    return (modules[parent] if parent else model), attr


def _same(a, b) -> bool:
    """a == b for settings (numbers, strings, None, tensors, arrays) without raising."""
    if a is b:
        return True
    try:
        if isinstance(a, (torch.Tensor, np.ndarray)) or isinstance(b, (torch.Tensor, np.ndarray)):
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        return bool(a == b)
    except Exception:  # noqa: BLE001  settings that cannot be compared count as changed
        return False


class Judge:
    """One check's run: calls the student's function on a guarded model (see `judging`)."""

    def __init__(self, exercise: str, model=None, tokenizer=None):
        self.exercise, self.model, self.tokenizer = exercise, model, tokenizer
        self.snapshot: Snapshot | None = None

    def call(self, fn, *args, context: str = "", **kwargs):
        """fn(*args) with everything it changed named as the mistake (and put back); its error or stub raised
        as StudentError / NotDone."""
        __tracebackhide__ = True
        value = error = None
        try:
            value = run(self.exercise, fn, *args, context=context, **kwargs)
        except BaseException as e:
            error = e
            raise
        finally:
            found = self.snapshot.changes()
            self.snapshot.restore(checked=True)
            if TRACE is not None:
                TRACE.append(("call", value if error is None else type(error).__name__, [k for k, _ in found]))
        if found:
            raise Mistake(self.exercise, found[0][1], found[0][0])
        return value

    def call_failing(self, fn, *args, fail_at: str, **kwargs) -> list[tuple[str, str]]:
        """fn(*args) while every forward pass fails when it reaches module `fail_at` (a path every call takes);
        returns what fn left changed (and puts it back)."""
        from_ = self.model.get_submodule(fail_at)

        def boom(module, inputs):
            raise _Probe("a forward pass that fails (planted by the check)")

        handle = from_.register_forward_pre_hook(boom)
        value = None
        try:
            value = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001  the planted failure, as the student's code lets it through
            value = type(e).__name__
        finally:
            handle.remove()
            found = self.snapshot.changes()
            self.snapshot.restore(checked=True)
            if TRACE is not None:
                TRACE.append(("failing", value, [k for k, _ in found]))
        return found


class _Probe(Exception):
    """Raised inside the model by a check, to see whether the student's hook survives a failed forward pass."""


class judging:
    """`with judging(ex, model, tokenizer) as j:` the block every check runs in. On entry: a model that still
    carries someone's editing hooks is refused (they would change every result), then a Snapshot. On exit:
    the snapshot restored, the outcome recorded ($KIT_CHECK_LOG), and an unexpected error of the check's own
    turned into CheckFailed (one line)."""

    def __init__(self, exercise: str, model=None, tokenizer=None):
        self.judge = Judge(exercise, model, tokenizer)

    def __enter__(self) -> Judge:
        j = self.judge
        if j.model is not None:
            left = hooks_attached(j.model, observers=False)
            if left:
                text = (f"hooks were attached before the check ran (on {left[0][0]}): an earlier run of your code "
                        f"left them, and they run in every forward pass. Run helpers.check.remove_hooks(model), "
                        f"then this cell again")
                record(j.exercise, "mistake", text, "hooks-before")
                raise Mistake(j.exercise, text, "hooks-before")
            if j.model.training:
                text = ("the model is in train mode (dropout on), so every forward pass gives different numbers: "
                        "run model.eval() (helpers.load_mlm returns it in eval mode), then this cell again")
                record(j.exercise, "mistake", text, "train-mode-before")
                raise Mistake(j.exercise, text, "train-mode-before")
        j.snapshot = Snapshot(j.model, j.tokenizer)
        return j

    def __exit__(self, exc_type, exc, tb) -> bool:
        __tracebackhide__ = True
        self.judge.snapshot.restore()
        if exc is None:
            return False
        if isinstance(exc, (Mistake, NotDone, StudentError)):
            status, key = outcome(exc)
            record(self.judge.exercise, status, exc.text if isinstance(exc, Mistake) else str(exc), key)
            return False
        if not isinstance(exc, Exception):       # KeyboardInterrupt: the student stopped it
            return False
        failed = CheckFailed(self.judge.exercise, exc)
        record(self.judge.exercise, "check_failed", str(failed))
        raise failed from None
