"""How a checker talks to the student: one line for every outcome, never a traceback into helpers.check.

    passed(ex, what)              print "✓ (b) capture_mlp: ..."
    cannot_tell(ex, what)         print "? (e) ...: ..." where this model cannot separate right from wrong
    Mistake(ex, text, key)        a recognised mistake (key: a stable slug such as "post-gelu"), or with
                                  key=None one line saying where the answer differs
    NotDone, StudentError         the stub still raises; the student's code raised (shown at their line)
    CheckFailed                   the check itself broke (one line, never the check's traceback)
    run(ex, fn, *args)            call the student's function, turning a stub or an error into the above
    diagnose(ex, got, variants, differs, tol)   name the one usual mistake `got` matches, else `differs`
    as_array, one_number, tolerance, close      the student's result as numbers, compared by its dtype
    record(...)                   every outcome, as one JSON line, to the file $KIT_CHECK_LOG names (grading)

IPython shows an exception through its `_render_traceback_()` when it has one: these exceptions give the
message (and for the student's own errors, only the student's frames).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

KIT = str(Path(__file__).resolve().parents[1])      # helpers/: frames from here are the checker's
LOG_VAR = "KIT_CHECK_LOG"
STATUSES = ("passed", "mistake", "differs", "error", "not_done", "cannot_tell", "check_failed")


class Mistake(AssertionError):
    """A wrong answer: a recognised mistake (`key`, a stable slug) or, with key=None, where it differs."""

    def __init__(self, exercise: str, text: str, key: str | None = None):
        super().__init__(f"✗ {exercise}: {text}")
        self.exercise, self.text, self.key = exercise, text, key

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
        self.exercise, self.frames = exercise, frames

    def _render_traceback_(self):
        return [str(self)] + self.frames


class CheckFailed(RuntimeError):
    """The check itself failed (a bug in helpers.check, or a model it cannot handle): one line."""

    def __init__(self, exercise: str, error: BaseException):
        where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        super().__init__(f"⚠ {exercise}: the check itself failed ({type(error).__name__}: {error}{at}), so it "
                         f"says nothing about your answer; please report this, with the model you use")
        self.exercise, self.error = exercise, error

    def _render_traceback_(self):
        return [str(self)]


def record(exercise: str, status: str, text: str, key: str | None = None) -> None:
    """Append one JSON line {exercise, name, status, key, text} to the file $KIT_CHECK_LOG names, if set
    (how helpers.grade reads a notebook's outcomes). Never fails the check: a log it cannot write is skipped."""
    path = os.environ.get(LOG_VAR, "").strip()
    if not path:
        return
    label, _, name = exercise.partition(" ")
    line = json.dumps({"exercise": label, "name": name, "status": status, "key": key, "text": text})
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def outcome(error: BaseException | None) -> tuple[str, str | None]:
    """(status, key) of a check that ended with `error` (None: it printed its own line)."""
    if isinstance(error, Mistake):
        return ("mistake" if error.key else "differs"), error.key
    if isinstance(error, NotDone):
        return "not_done", None
    if isinstance(error, StudentError):
        return "error", None
    return "check_failed", None


def passed(exercise: str, what: str) -> None:
    """Print the one-line pass (and return nothing, so a check cell shows that line only)."""
    print(f"✓ {exercise}: {what}")
    record(exercise, "passed", what)


def cannot_tell(exercise: str, what: str) -> None:
    """Print the one line that replaces a tick when this model cannot tell the right answer from a mistake."""
    print(f"? {exercise}: {what}")
    record(exercise, "cannot_tell", what)


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
                                f"itself (its name, without calling it)", "not-a-function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise NotDone(exercise, str(e), _student_frames(sys.exc_info()[2])) from None
    except Exception as e:  # the student's bug: show it at their line
        raise StudentError(exercise, e, _student_frames(sys.exc_info()[2]), context) from None


# --- numbers ------------------------------------------------------------------------------------------

def _numeric(x):
    """Tensors (any device, grad or not), lists and tuples of them, numbers -> nested numpy/python values."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy() if x.dtype != torch.bfloat16 else x.detach().cpu().float().numpy()
    if isinstance(x, (list, tuple)):
        return [_numeric(v) for v in x]
    return x


def dtype_of(x) -> np.dtype:
    """The floating dtype the student computed in (float32 for a float32 tensor or array, else float64)."""
    if isinstance(x, torch.Tensor):
        return np.dtype(np.float32) if x.dtype in (torch.float32, torch.float16, torch.bfloat16) \
            else np.dtype(np.float64)
    if isinstance(x, (list, tuple)) and x:
        return max((dtype_of(v) for v in x), key=lambda d: d.itemsize)
    if isinstance(x, (np.ndarray, np.generic)) and np.issubdtype(x.dtype, np.floating):
        return np.dtype(np.float32) if x.dtype.itemsize <= 4 else np.dtype(np.float64)
    return np.dtype(np.float64)


def as_array(x, exercise: str, what: str) -> np.ndarray:
    """The student's result as a float64 numpy array (tensors on any device or requiring grad, lists of
    them, numbers); anything else is a Mistake that says what was expected."""
    if x is None:
        raise Mistake(exercise, f"{what} is None: is the `return` line missing (or inside the loop)?", "returned-none")
    try:
        out = np.asarray(_numeric(x), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Mistake(exercise, f"{what} should be numbers (an array, a tensor or a float), got "
                                f"{type(x).__name__}", "not-numbers") from None
    return out


def one_number(exercise: str, value, what: str) -> float:
    """The student's result as one float (a float, a 0-d or one-element tensor/array); `what` names the
    call, e.g. "for 'He saw [MASK].'"."""
    if value is None:
        raise Mistake(exercise, f"{what} your function returned None: is the `return` line missing?", "returned-none")
    v = as_array(value, exercise, f"{what}, your result")
    if v.size != 1:
        raise Mistake(exercise, f"{what} you returned {v.size} numbers (shape {v.shape}, a "
                                f"{type(value).__name__}); return one number", "not-one-number")
    return float(v.ravel()[0])


def tolerance(got, base: float) -> float:
    """The tolerance (relative to the reference's scale) for a result in `got`'s dtype: `base`, or 16
    float32 epsilons when the student computed in float32 (a right answer in float32 is not wrong)."""
    return max(base, 16 * float(np.finfo(dtype_of(got)).eps))


def close(got, want, tol: float = 1e-4) -> bool:
    """Same shape and values within tol (relative to the reference's scale)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False
    scale = max(1.0, float(np.nanmax(np.abs(want))) if want.size and not np.isnan(want).all() else 1.0)
    return bool(np.allclose(got, want, atol=tol * scale, rtol=0, equal_nan=True))


def num(x: float, digits: int = 3) -> str:
    """A number for a message, rounded (never float32 noise such as 2.6600000858306885)."""
    x = float(x)
    if np.isnan(x) or np.isinf(x):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{round(x, digits):g}"


def matches(got, variants: dict, tol: float) -> list:
    """The keys of `variants` ({key: (text, value)}) whose value `got` equals within tol."""
    return [k for k, (_, v) in variants.items() if v is not None and close(got, v, tol)]


def diagnose(exercise: str, got, variants: dict, differs: str, tol: float) -> None:
    """Raise the Mistake of the one usual mistake `got` matches ({key: (text, value)}); when none or
    several match, the Mistake `differs` (a line that says where the answer differs, key None)."""
    found = matches(got, variants, tol)
    if len(found) == 1:
        raise Mistake(exercise, variants[found[0]][0], found[0])
    if len(found) > 1:
        differs += (f" (it matches {len(found)} of the usual mistakes at once on these inputs, so the check "
                    f"names none)")
    raise Mistake(exercise, differs)


def confusable(want, variants: dict, tol: float) -> list:
    """Power: the keys of the variants the right answer `want` cannot be told from (within tol) on these
    inputs, and of pairs of variants that equal each other (either could be named). Empty is good."""
    out = [k for k in matches(want, variants, tol)]
    keys = [k for k in variants if variants[k][1] is not None and k not in out]
    for i, k in enumerate(keys):
        for j in keys[i + 1:]:
            if close(variants[k][1], variants[j][1], tol) and np.shape(variants[k][1]) == np.shape(variants[j][1]):
                out += [x for x in (k, j) if x not in out]
    return out


def verdict(exercise: str, want, named: dict, tol: float, what: str) -> None:
    """The line for an answer that equals the kit's: a tick, unless on these inputs the kit's answer also
    equals one of the usual mistakes `named` (then the check cannot tell, and says which)."""
    blind = matches(want, named, tol)
    if not blind:
        return passed(exercise, what)
    cannot_tell(exercise, f"your answer equals the kit's, but on this model so would {len(blind)} usual "
                          f"mistake(s) ({', '.join(blind[:3])}): the check cannot tell them apart here, so this is "
                          f"no proof. Try it on a larger model (bert-base-uncased)")
