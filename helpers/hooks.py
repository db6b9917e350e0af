"""Forward hooks that cannot leak, in the spirit of baukit's nethook.

    get_module(model, name)                 the submodule at a dotted name (errors list close names)
    Trace(model, name, edit_output=, stop=) hook one module for the life of a `with` block
    TraceDict(model, names, ...)            the same for several modules at once
    StopForward                             raised after the last traced module when stop=True
    hooks_attached(model)                   [(module name, kind)] of every hook left on the model
    mlp_activations(...)                    MLP neuron values at target words, all layers in one pass

Hooks are registered in `__enter__` and removed in `__exit__`, so they are gone
after the block whatever happens inside it (an exception, KeyboardInterrupt).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
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
    """

    def __init__(self, model: torch.nn.Module, name: str, retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True):
        self.model, self.name = model, name
        self.module = get_module(model, name)
        self.retain_output, self.edit_output, self.stop, self.detach = retain_output, edit_output, stop, detach
        self.output: torch.Tensor | None = None
        self._handle = None

    def _hook(self, module, inputs, output):
        if self.edit_output is not None:
            output = self.edit_output(output, module)
        if self.retain_output:
            self.output = _detached(output) if self.detach else output
        if self.stop:
            raise StopForward(self.name)
        return output

    def __enter__(self) -> "Trace":
        self._handle = self.module.register_forward_hook(self._hook)
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

    stop=True ends the forward pass after the last of `names` to run. detach=False keeps the
    outputs in the autograd graph (for a loss on them, as in training).
    """

    def __init__(self, model: torch.nn.Module, names: Iterable[str], retain_output: bool = True,
                 edit_output: Callable | None = None, stop: bool = False, detach: bool = True):
        super().__init__()
        names = list(dict.fromkeys(names))
        order = [n for n, _ in model.named_modules() if n in set(names)]
        last = order[-1] if order else None
        for n in names:
            get_module(model, n)  # fail before anything is registered
        self._traces = [Trace(model, n, retain_output, edit_output, stop=stop and n == last, detach=detach)
                        for n in names]
        for t in self._traces:
            self[t.name] = t

    def __enter__(self) -> "TraceDict":
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


def hooks_attached(model: torch.nn.Module) -> list[tuple[str, str]]:
    """Every forward/pre-forward/backward hook still registered on any module of `model`."""
    found = []
    for name, m in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(m, kind, None):
                found.append((name or "<root>", kind.strip("_")))
    return found


def mlp_activations(model, tokenizer, sentences: Sequence[str], target_words: str | Sequence[str],
                    layers: int | Iterable[int], site: str = "pre", batch_size: int = 32,
                    wordpiece: str = "last", progress: bool | None = None,
                    verbose: bool = True) -> dict[int, np.ndarray]:
    """MLP neuron values at the target word of each sentence: {layer: array[n_sentences, n_neurons]}.

    site: "pre" = before the nonlinearity (BERT: `intermediate.dense` output),
          "post" = after it. All `layers` come from one forward pass per batch,
          which stops after the deepest layer asked for. Sentences are batched by
          length (less padding); the result keeps the input order.
    target_words: one word for all sentences or one per sentence; each must occur
          exactly once as a whole word (see stimuli.target_positions).
    wordpiece: read a word split into pieces at its "last" (default) or "first" piece;
          verbose: say so in one printed line when any target word is split.
    """
    from .models import mlp_module_name
    from .stimuli import target_positions

    layer_list = sorted({int(layers)} if isinstance(layers, (int, np.integer)) else {int(x) for x in layers})
    if not layer_list:
        raise ValueError("layers is empty: name at least one layer")
    names = {layer: mlp_module_name(model, layer, site) for layer in layer_list}
    positions = target_positions(tokenizer, sentences, target_words, wordpiece=wordpiece, verbose=verbose)
    order = np.argsort([len(tokenizer.tokenize(s)) for s in sentences], kind="stable")
    if tokenizer.pad_token is None:  # GPT-2 has no pad token: one sentence per forward pass
        batch_size = 1
    out = {layer: None for layer in layer_list}
    device = next(model.parameters()).device
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    show = progress if progress is not None else len(batches) > 8
    it = batches
    if show:
        from tqdm.auto import tqdm
        it = tqdm(batches, desc=f"capturing layers {layer_list}", leave=False)
    with torch.no_grad():
        for idx in it:
            enc = tokenizer([sentences[i] for i in idx], return_tensors="pt",
                            padding=tokenizer.pad_token is not None).to(device)
            with TraceDict(model, names.values(), stop=True) as td:
                model(**enc)
            rows = torch.arange(len(idx))
            pos = torch.tensor([positions[i] for i in idx])
            for layer, name in names.items():
                vals = td[name].output[rows, pos].float().cpu().numpy()
                if out[layer] is None:
                    out[layer] = np.empty((len(sentences), vals.shape[1]), dtype=np.float32)
                out[layer][idx] = vals
    return out
