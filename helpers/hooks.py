"""Forward hooks that cannot leak, in the spirit of baukit's nethook.

    get_module(model, name)                 the submodule at a dotted name (errors list close names; a
                                            torch.compile'd model is named, with model._orig_mod to pass)
    Trace(model, name, edit_output=, stop=) hook one module for the life of a `with` block (its output, or
                                            its input with on="input": a gated MLP's down_proj)
    TraceDict(model, names, ...)            the same for several modules at once
    StopForward                             raised once every traced module has run, when stop=True
    hooks_attached(model)                   [(module name, kind)] of every hook left on the model (not a library's)
    hook_snapshot(model), remove_hooks_since(model, snapshot)   remove exactly the hooks added since a snapshot
    hook_table(model), put_back_hooks(model, table)   re-attach hooks someone removed (a dict cleared)
    library_hook(fn), inert_hook(fn)        hooks another library installed (transformers' output capturing)
    eval_mode(model), right_padding(tok)    context managers: dropout off; positions counted from the left
    refuse_row_edits(model, why)            for readers that re-batch: an error if a per-row edit is attached

Torch only: this file knows no model family (helpers.arch names the modules) and no stimuli
(helpers.capture reads MLP neurons with these hooks).

Hooks are registered in `__enter__` (not when a Trace is built) and removed in
`__exit__`, so they are gone after the block whatever happens inside it (an
exception, KeyboardInterrupt). Entering a Trace that is already entered is an error.
On one module, edits run before reads: a Trace records what the next layer receives.

The kit shares the model with other libraries. transformers (5.x) installs its own permanent, inert
forward hooks on every block the first time a model runs with output_hidden_states=True or
output_attentions=True; accelerate wraps `forward` and marks the module with `_hf_hook`. Those are
not a leak and are never removed here: `hooks_attached` leaves library hooks out, and clean-up
removes exactly the hooks added since a `hook_snapshot` (by handle id), never a whole hook dict.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

import torch


class StopForward(Exception):
    """Raised inside a forward pass to end it early; `Trace`/`TraceDict` swallow it."""


def _detached(x):
    """Detach a tensor, or the tensors in a tuple/list output (attention blocks return tuples)."""
    if torch.is_tensor(x):
        return x.detach()
    if isinstance(x, (tuple, list)):
        return type(x)(_detached(v) for v in x)
    return x


def compiled_hint(model) -> str:
    """For a torch.compile'd model (an OptimizedModule, whose modules are named `_orig_mod.<name>`), the
    sentence that says to pass `model._orig_mod`; "" for any other model."""
    if not isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
        return ""
    return (f" It is a torch.compile'd model ({type(model).__name__}): the kit hooks the modules of the model "
            f"itself, so pass model._orig_mod (the same weights, not compiled) instead; hooks added to a compiled "
            f"model's modules are not guaranteed to run.")


def get_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule called `name` ("bert.encoder.layer.3.intermediate.dense"). A torch.compile'd model is an
    error that says to pass model._orig_mod."""
    if not isinstance(name, str):
        got = f"a {type(name).__name__} module" if isinstance(name, torch.nn.Module) else repr(name)
        raise TypeError(f"expected a dotted module name (str) such as 'bert.encoder.layer.3.intermediate.dense', "
                        f"got {got}; a module's name is [n for n, m in model.named_modules() if m is module], "
                        f"and get_module(model, name) goes back")
    modules = dict(model.named_modules())
    if name not in modules:
        close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise LookupError(f"{type(model).__name__} has no module {name!r}.{compiled_hint(model) or hint}")
    return modules[name]


ON = ("output", "input")


class Trace:
    """Capture (and optionally edit) one module's output during forward passes.

    with Trace(model, "bert.encoder.layer.3.intermediate.dense") as t:
        model(**batch)
    t.output            # tensor [batch, seq, features], detached

    on="input" traces the module's (first) input instead, with a forward pre-hook: the value is in
    `t.input`, and edit_output edits what the module receives (a gated MLP's neurons are the input of
    its down_proj). `t.value` is whichever of the two was traced.
    edit_output: fn(value, module) -> new value, applied before capture.
    stop: end the forward pass right after this module (the output is kept); with on="input", right
    before it runs.
    Edits run before reads: a Trace without edit_output records the value after every edit on
    the same module (helpers.ablate_neurons included), in whichever order the `with` blocks were
    entered; edits run in the order they were entered (the innermost last, so it has the last word).
    """

    def __init__(self, model: torch.nn.Module, name: str, retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True,
                 on: str = "output"):
        if on not in ON:
            raise ValueError(f"on must be 'output' (a forward hook) or 'input' (a forward pre-hook), got {on!r}")
        self.model, self.name, self.on = model, name, on
        self.module = get_module(model, name)
        self.retain_output, self.edit_output, self.stop, self.detach = retain_output, edit_output, stop, detach
        self.output: torch.Tensor | None = None
        self.input: torch.Tensor | None = None
        self._handle = None
        self._ready_to_stop = lambda: True  # a TraceDict waits for all its modules before stopping

    @property
    def value(self):
        """What was traced: the input (on="input") or the output."""
        return self.input if self.on == "input" else self.output

    def _take(self, value, module):
        """Edit, keep and (with stop) end the pass: the part both kinds of hook share."""
        if self.edit_output is not None:
            value = self.edit_output(value, module)
        if self.retain_output:
            kept = _detached(value) if self.detach else value
            if self.on == "input":
                self.input = kept
            else:
                self.output = kept
        if self.stop and self._ready_to_stop():
            raise StopForward(self.name)
        return value

    def _hook(self, module, inputs, output):
        return self._take(output, module)

    def _pre_hook(self, module, args, kwargs):
        if args:
            return (self._take(args[0], module), *args[1:]), kwargs
        key = next(iter(kwargs))                 # called by keyword: nn.Linear(input=x)
        return args, {**kwargs, key: self._take(kwargs[key], module)}

    def __enter__(self) -> "Trace":
        if self._handle is not None:
            raise RuntimeError(f"the Trace of {self.name!r} is already entered: a second `with` on it would "
                               f"leak a hook; build a new Trace instead")
        if self.on == "input":
            self._handle = self.module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        else:
            self._handle = self.module.register_forward_hook(self._hook)
        if self.edit_output is not None:
            _observers_last(self.module)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return exc_type is not None and issubclass(exc_type, StopForward)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


class TraceDict(dict):
    """Several `Trace`s at once: `with TraceDict(model, names) as td: ...; td[name].output`.

    names: a list of dotted names, or one name as a str; on: "output" or "input" (as in Trace), for all of
    them. stop=True ends the forward pass once
    every one of `names` has run (a parent and its child both), not before. detach=False keeps
    the outputs in the autograd graph (for a loss on them, as in training).
    """

    def __init__(self, model: torch.nn.Module, names: Iterable[str], retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True,
                 on: str = "output"):
        super().__init__()
        names = list(dict.fromkeys([names] if isinstance(names, str) else names))
        self._traces = [Trace(model, n, retain_output, edit_output, stop=stop, detach=detach, on=on) for n in names]
        self._ran: set[str] = set()
        for t in self._traces:
            t._ready_to_stop = lambda name=t.name: self._all_ran(name)
            self[t.name] = t

    def _all_ran(self, name: str) -> bool:
        """Note that `name` has produced its output; True (and start afresh) once all have."""
        self._ran.add(name)
        if len(self._ran) < len(self._traces):
            return False
        self._ran.clear()
        return True

    def __enter__(self) -> "TraceDict":
        for t in self._traces:
            if t._handle is not None:
                raise RuntimeError(f"this TraceDict (tracing {t.name!r}) is already entered: a second `with` "
                                   f"on it would leak hooks; build a new TraceDict instead")
        self._ran.clear()
        try:
            for t in self._traces:
                t.__enter__()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return exc_type is not None and issubclass(exc_type, StopForward)

    def close(self) -> None:
        for t in self._traces:
            t.close()


class eval_mode:
    """Eval mode (dropout off) inside the block, every submodule's previous mode restored after it:
    measurements must not depend on whether someone left the model (or part of it) in train mode."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.was = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for m, training in self.was:
            m.training = training


class right_padding:
    """The tokenizer pads on the right inside the block (its setting restored after it): the kit counts
    token positions from the start of each text, which left padding would shift."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __enter__(self):
        self.was = getattr(self.tokenizer, "padding_side", None)
        if self.was is not None:
            self.tokenizer.padding_side = "right"
        return self.tokenizer

    def __exit__(self, *exc):
        if self.was is not None:
            self.tokenizer.padding_side = self.was


def _is_observer(fn) -> bool:
    """A hook that only reads: a Trace without edit_output, or a function marked observe_only."""
    owner = getattr(fn, "__self__", None)
    return bool(getattr(fn, "observe_only", False)) or (isinstance(owner, Trace) and owner.edit_output is None)


def _observers_last(module: torch.nn.Module) -> None:
    """Move the module's reading hooks behind its editing ones (hooks run in registration order), so
    a Trace records what the next layer receives, whichever `with` block was entered first."""
    for hooks in (module._forward_hooks, module._forward_pre_hooks):
        for hid in [h for h, fn in hooks.items() if _is_observer(fn)]:
            hooks[hid] = hooks.pop(hid)


def refuse_row_edits(model: torch.nn.Module, why: str) -> None:
    """A ValueError when an edit that addresses batch rows one by one (ablate_neurons with one position
    entry per row) is attached: a reader that reorders or re-batches the texts would apply it to the
    wrong rows. `why` says what the reader does."""
    for name, m in model.named_modules():
        for fn in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]:
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, Trace) and getattr(owner.edit_output, "per_row", False):
                raise ValueError(f"an ablate_neurons with one position entry per batch row is attached to {name}; "
                                 f"{why}. Inside that `with` block run model(**batch) on your own batch, or give "
                                 f"ablate_neurons same_positions=... (the same tokens in every row) or positions=None")


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# the bookkeeping dicts torch keeps beside the hook dicts, keyed by the same handle id
_EXTRA_DICTS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
LIBRARIES = ("transformers", "accelerate", "peft", "optimum")     # hooks defined there are a library's
INERT = ("transformers.utils.output_capturing",                   # library hooks that never change an output
         "torch.utils.module_tracker")                             # (torch's FlopCounterMode tracks modules)


def _defined_in(fn) -> str:
    """The module a hook function was defined in (through functools.partial and bound methods)."""
    while hasattr(fn, "func"):                      # functools.partial
        fn = fn.func
    fn = getattr(fn, "__func__", fn)                # bound method
    return getattr(fn, "__module__", None) or type(fn).__module__ or ""


def library_hook(fn) -> bool:
    """True for a hook another library installed (transformers, accelerate, peft): not the student's, not
    the kit's; the kit never reports it as left behind and never removes it."""
    return _defined_in(fn).split(".")[0] in LIBRARIES


def inert_hook(fn) -> bool:
    """True for a library hook known to leave every output unchanged (transformers' output capturing, torch's
    module tracker), which a path that skips module calls (helpers.fast) may skip too."""
    return any(_defined_in(fn) == m or _defined_in(fn).startswith(m + ".") for m in INERT)


_GLOBAL_DICTS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")


def _hook_dicts(model: torch.nn.Module):
    """(module name, kind, hook dict, module) for every non-empty hook dict of every module, then torch's
    global module hooks (name "<global>", module None)."""
    for name, m in model.named_modules():
        for kind in HOOK_DICTS:
            d = getattr(m, kind, None)
            if d:
                yield name or "<root>", kind.strip("_"), d, m
    for kind in _GLOBAL_DICTS:
        d = getattr(torch.nn.modules.module, kind, None)
        if d:
            yield "<global>", kind.strip("_"), d, None


def hooks_attached(model: torch.nn.Module, observers: bool = True,
                   libraries: bool = False) -> list[tuple[str, str]]:
    """Every forward/pre-forward/backward hook still registered on any module of `model` (and torch's
    global module hooks, as "<global>"): [(module name, kind)]. Library hooks (library_hook) are left out
    unless libraries=True; observers=False also leaves out hooks that only read (a function marked
    `fn.observe_only = True`, or an inert library hook)."""
    found = []
    for name, kind, d, _ in _hook_dicts(model):
        if any((observers or not (getattr(fn, "observe_only", False) or inert_hook(fn)))
               and (libraries or not library_hook(fn)) for fn in d.values()):
            found.append((name, kind))
    return found


def hook_snapshot(model: torch.nn.Module) -> set[int]:
    """The handle ids of every hook on `model` now (library hooks included), for remove_hooks_since."""
    return {hid for _, _, d, _ in _hook_dicts(model) for hid in d}


def remove_hooks_since(model: torch.nn.Module, snapshot: set[int]) -> list[tuple[str, str]]:
    """Remove exactly the hooks added since `snapshot` (hook_snapshot), library hooks excepted; every hook
    that was there before stays. Returns [(module name, kind)] of what was removed."""
    removed = []
    for name, kind, d, m in list(_hook_dicts(model)):
        for hid in [h for h, fn in d.items() if h not in snapshot and not library_hook(fn)]:
            del d[hid]
            for extra in _EXTRA_DICTS if m is not None else ():
                getattr(m, extra, {}).pop(hid, None)
            if (name, kind) not in removed:
                removed.append((name, kind))
    return removed


def hook_table(model: torch.nn.Module) -> dict:
    """{(module name, kind): (module, {handle id: hook}, {bookkeeping dict: {id: flag}})} of every hook now,
    library hooks included (for put_back_hooks)."""
    out = {}
    for name, kind, d, m in _hook_dicts(model):
        extras = {e: {h: v for h, v in getattr(m, e, {}).items() if h in d} for e in _EXTRA_DICTS} if m is not None else {}
        out[(name, kind)] = (m, dict(d), extras)
    return out


def put_back_hooks(model: torch.nn.Module, table: dict) -> list[tuple[str, str]]:
    """Re-attach every hook of `table` (hook_table) that is no longer registered, e.g. after someone cleared a
    hook dict, with its with_kwargs / always_call flags; returns [(module name, kind)] where some were missing."""
    missing = []
    for (name, kind), (m, hooks, extras) in table.items():
        d = getattr(torch.nn.modules.module if m is None else m, f"_{kind}")
        for hid, fn in hooks.items():
            if hid not in d:
                d[hid] = fn
                for e, flags in extras.items():
                    if hid in flags:
                        getattr(m, e)[hid] = flags[hid]
                if (name, kind) not in missing:
                    missing.append((name, kind))
    return missing
