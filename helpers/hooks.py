"""Forward hooks that cannot leak, in the spirit of baukit's nethook.

    get_module(model, name)                 the submodule at a dotted name (errors list close names)
    Trace(model, name, edit_output=, stop=) hook one module for the life of a `with` block
    TraceDict(model, names, ...)            the same for several modules at once
    StopForward                             raised once every traced module has run, when stop=True
    hooks_attached(model)                   [(module name, kind)] of every hook left on the model
    eval_mode(model), right_padding(tok)    context managers: dropout off; positions counted from the left
    refuse_row_edits(model, why)            for readers that re-batch: an error if a per-row edit is attached

Torch only: this file knows no model family (helpers.arch names the modules) and no stimuli
(helpers.capture reads MLP neurons with these hooks).

Hooks are registered in `__enter__` (not when a Trace is built) and removed in
`__exit__`, so they are gone after the block whatever happens inside it (an
exception, KeyboardInterrupt). Entering a Trace that is already entered is an error.
On one module, edits run before reads: a Trace records what the next layer receives.
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


def get_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule called `name` ("bert.encoder.layer.3.intermediate.dense")."""
    if not isinstance(name, str):
        got = f"a {type(name).__name__} module" if isinstance(name, torch.nn.Module) else repr(name)
        raise TypeError(f"expected a dotted module name (str) such as 'bert.encoder.layer.3.intermediate.dense', "
                        f"got {got}; a module's name is [n for n, m in model.named_modules() if m is module], "
                        f"and get_module(model, name) goes back")
    modules = dict(model.named_modules())
    if name not in modules:
        close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise LookupError(f"{type(model).__name__} has no module {name!r}.{hint}")
    return modules[name]


class Trace:
    """Capture (and optionally edit) one module's output during forward passes.

    with Trace(model, "bert.encoder.layer.3.intermediate.dense") as t:
        model(**batch)
    t.output            # tensor [batch, seq, features], detached

    edit_output: fn(output, module) -> new output, applied before capture.
    stop: end the forward pass right after this module (the output is kept).
    Edits run before reads: a Trace without edit_output records the output after every edit on
    the same module (helpers.ablate_neurons included), in whichever order the `with` blocks were
    entered; edits run in the order they were entered (the innermost last, so it has the last word).
    """

    def __init__(self, model: torch.nn.Module, name: str, retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True):
        self.model, self.name = model, name
        self.module = get_module(model, name)
        self.retain_output, self.edit_output, self.stop, self.detach = retain_output, edit_output, stop, detach
        self.output: torch.Tensor | None = None
        self._handle = None
        self._ready_to_stop = lambda: True  # a TraceDict waits for all its modules before stopping

    def _hook(self, module, inputs, output):
        if self.edit_output is not None:
            output = self.edit_output(output, module)
        if self.retain_output:
            self.output = _detached(output) if self.detach else output
        if self.stop and self._ready_to_stop():
            raise StopForward(self.name)
        return output

    def __enter__(self) -> "Trace":
        if self._handle is not None:
            raise RuntimeError(f"the Trace of {self.name!r} is already entered: a second `with` on it would "
                               f"leak a hook; build a new Trace instead")
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

    names: a list of dotted names, or one name as a str. stop=True ends the forward pass once
    every one of `names` has run (a parent and its child both), not before. detach=False keeps
    the outputs in the autograd graph (for a loss on them, as in training).
    """

    def __init__(self, model: torch.nn.Module, names: Iterable[str], retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True):
        super().__init__()
        names = list(dict.fromkeys([names] if isinstance(names, str) else names))
        self._traces = [Trace(model, n, retain_output, edit_output, stop=stop, detach=detach) for n in names]
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
    hooks = module._forward_hooks
    for hid in [h for h, fn in hooks.items() if _is_observer(fn)]:
        hooks[hid] = hooks.pop(hid)


def refuse_row_edits(model: torch.nn.Module, why: str) -> None:
    """A ValueError when an edit that addresses batch rows one by one (ablate_neurons with one position
    entry per row) is attached: a reader that reorders or re-batches the texts would apply it to the
    wrong rows. `why` says what the reader does."""
    for name, m in model.named_modules():
        for fn in m._forward_hooks.values():
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, Trace) and getattr(owner.edit_output, "per_row", False):
                raise ValueError(f"an ablate_neurons with one position entry per batch row is attached to {name}; "
                                 f"{why}. Inside that `with` block run model(**batch) on your own batch, or give "
                                 f"ablate_neurons same_positions=... (the same tokens in every row) or positions=None")


def hooks_attached(model: torch.nn.Module, observers: bool = True) -> list[tuple[str, str]]:
    """Every forward/pre-forward/backward hook still registered on any module of `model`.
    observers=False leaves out hooks that only read (a function marked `fn.observe_only = True`)."""
    found = []
    for name, m in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if any(observers or not getattr(fn, "observe_only", False) for fn in getattr(m, kind, {}).values()):
                found.append((name or "<root>", kind.strip("_")))
    return found

