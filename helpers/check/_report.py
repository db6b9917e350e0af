"""How a checker talks to the student: one line for a pass, one named mistake for a fail, and the student's
own line (never the checker's insides) when their code raises.

    run(exercise, fn, *args)   call the student's fn; a stub or an error in it is re-raised, shown at their line
    passed(exercise, what)     print "✓ (b) capture_mlp: ..."
    Mistake(exercise, text)    the exception a checker raises for a recognised mistake (shown as one message)
    compare(got, want, ...)    do two results agree (shape, then values)?

IPython shows an exception through its `_render_traceback_()` when it has one: these exceptions give
just the student's frames and the message, so a notebook never shows a traceback into helpers.check.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from ..hooks import get_module, hooks_attached

KIT = str(Path(__file__).resolve().parents[1])      # helpers/: frames from here are the checker's


class Mistake(AssertionError):
    """A recognised mistake: `exercise` and a sentence that names it (and says how to fix it)."""

    def __init__(self, exercise: str, text: str):
        super().__init__(f"✗ {exercise}: {text}")
        self.exercise, self.text = exercise, text

    def _render_traceback_(self):
        return [str(self)]


class StudentError(Exception):
    """The student's function raised: the original exception, shown at the student's own lines."""

    def __init__(self, exercise: str, error: BaseException, frames: list[str], context: str = ""):
        super().__init__(f"{exercise}: your function raised {type(error).__name__}: {error}"
                         + (f" ({context})" if context else ""))
        self.exercise, self.error, self.frames, self.context = exercise, error, frames, context

    def _render_traceback_(self):
        where = f" {self.context}" if self.context else ""
        return ([f"✗ {self.exercise}: your function raised an error{where} (in your code, not in the check):"]
                + self.frames + [f"{type(self.error).__name__}: {self.error}"])


class NotDone(NotImplementedError):
    """The exercise's stub still raises NotImplementedError: the hint, and where the stub is."""

    def __init__(self, exercise: str, hint: str, frames: list[str]):
        super().__init__(f"{exercise} is not done yet. {hint}")
        self.frames = frames

    def _render_traceback_(self):
        return [str(self)] + self.frames


def _student_frames(tb) -> list[str]:
    """The traceback's frames outside helpers/ (the student's cell and their own helpers), formatted."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(KIT)]
    return [line.rstrip("\n") for line in traceback.format_list(frames)]


def run(exercise: str, fn, *args, context: str = "", **kwargs):
    """fn(*args, **kwargs); a NotImplementedError (the stub) or any other error in fn is re-raised as
    NotDone / StudentError, which show the student's lines and the message only (`context`: what the
    function was given, e.g. "on 'Ximena waved.' (word 'Ximena', split into 3 pieces)")."""
    __tracebackhide__ = True
    if not callable(fn):
        raise Mistake(exercise, f"expected your function, got {type(fn).__name__} {fn!r}; pass the function "
                                f"itself (its name, without calling it)")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise NotDone(exercise, str(e), _student_frames(sys.exc_info()[2])) from None
    except Exception as e:  # the student's bug: show it at their line
        raise StudentError(exercise, e, _student_frames(sys.exc_info()[2]), context) from None


def passed(exercise: str, what: str) -> None:
    """Print the one-line pass (and return nothing, so a check cell shows that line only)."""
    print(f"✓ {exercise}: {what}")


def as_array(x, exercise: str, what: str) -> np.ndarray:
    """The student's result as a float64 numpy array (tensors on any device, lists, numbers)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mistake(exercise, f"{what} should be numbers (an array or a float), got {type(x).__name__}") from None


def close(got, want, tol: float = 1e-4) -> bool:
    """Same shape and values within tol (relative to the reference's scale)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False
    scale = max(1.0, float(np.nanmax(np.abs(want))) if want.size else 1.0)
    return bool(np.allclose(got, want, atol=tol * scale, rtol=0, equal_nan=True))


def diagnose(exercise: str, got, variants: dict[str, object], tol: float = 1e-4) -> None:
    """Raise Mistake naming the first wrong variant `got` matches ({mistake text: the variant's result});
    do nothing when none matches."""
    for text, value in variants.items():
        if value is not None and close(got, value, tol):
            raise Mistake(exercise, text)


def take_hooks_off(model) -> list:
    """Take every forward and pre-forward hook off `model` (one a failed exercise run left would change every
    later result); returns where they were (hooks_attached)."""
    left = hooks_attached(model)
    for name, _ in left:
        m = model if name == "<root>" else get_module(model, name)
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    return left
