"""The command lines: `python -m helpers` (the lecture's summary) and the arguments it shares with
`python -m helpers.report`.

    main(argv)                        python -m helpers [--model M] [--contrast C] [--layer L] [--q Q]
                                      [--method bh|by] [--figures DIR]
    add_lecture_args(ap), checked_setup(ap, args), writable_folder(ap, flag, folder), positive_int

Bad arguments are usage errors (exit 2, no traceback) naming the argument, found before the slow part: an
output folder is tried by writing (and removing) a probe file in it before any model is loaded.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from .arch import check_layer
from .lecture import TrainModeWarning, part1, part2, part3, train_mode_note, two_slot_items
from .loading import ModelUnavailable, load_mlm
from .plots.lecture import lecture_figures
from .stimuli import StimulusError, list_contrasts, load_contrast


def _fraction(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < q < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return q


def _natural(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def positive_int(text: str) -> int:
    n = _natural(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def add_lecture_args(ap: argparse.ArgumentParser) -> None:
    """--model, --contrast, --layer, --q, --method: the arguments of both command lines."""
    ap.add_argument("--model", default=None, help="hub name, folder or 'stand-in' (default: $KIT_MODEL or auto)")
    ap.add_argument("--contrast", default="him_her",
                    help="a shipped contrast or a .tsv path; Parts 2-3 need a demo sentence with one slot per "
                         "word among its test lines (of the shipped sets: him_her)")
    ap.add_argument("--layer", type=_natural, default=None, help="MLP layer (default: the lecture's, 9 of 12)")
    ap.add_argument("--q", type=_fraction, default=0.05, help="FDR level, 0 < q < 1 (default 0.05)")
    ap.add_argument("--method", default="bh", type=str.lower, choices=["bh", "by"],
                    help="FDR method, in any case: bh (Benjamini-Hochberg) or by (Benjamini-Yekutieli)")


def checked_setup(ap: argparse.ArgumentParser, a):
    """(model, tokenizer, contrast) for parsed arguments `a`, or ap.error (exit 2, no traceback) naming the
    bad argument: the contrast is checked before the model is loaded, the layer right after."""
    try:
        c = load_contrast(a.contrast)
    except StimulusError as e:
        ap.error(f"--contrast: {e}")
    if len(c.pairs) < 2:
        ap.error(f"--contrast {a.contrast}: {len(c.pairs)} pair; the paired t-test of Part 1 needs at least 2 "
                 f"'pair' lines (the shipped sets have 60 or more)")
    if not two_slot_items(c):
        ok = [n for n in list_contrasts() if two_slot_items(load_contrast(n))]
        ap.error(f"--contrast {a.contrast}: Parts 2 and 3 need a demo sentence among its test lines with one "
                 f"{c.a!r} [MASK] and one {c.b!r} [MASK]; it has none. Shipped sets that have one: {', '.join(ok)}")
    try:
        model, tok = load_mlm(a.model)
    except ModelUnavailable as e:
        ap.error(f"--model: {e}")
    if a.layer is not None:
        try:
            check_layer(model, a.layer)
        except ValueError as e:
            ap.error(f"--layer: {e}")
    return model, tok, c


def writable_folder(ap: argparse.ArgumentParser, flag: str, folder) -> None:
    """Create `folder` now and write (then remove) a probe file in it, ap.error if either fails, so a bad
    path fails before the slow part. A folder that exists but takes no files (read-only) fails too."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        ap.error(f"{flag} {folder}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        ap.error(f"{flag} {folder}: cannot create it ({e.strerror or e})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        ap.error(f"{flag} {folder}: cannot write a file there ({e.strerror or e}); choose a folder you can write to")


def writable_file(ap: argparse.ArgumentParser, flag: str, path) -> None:
    """writable_folder for the file's folder, then: an existing `path` must be a file that can be overwritten."""
    p = Path(path)
    if p.is_dir():
        ap.error(f"{flag} {path}: is a folder; give the file's path, e.g. {p / 'report.html'}")
    writable_folder(ap, flag, p.parent)
    if p.exists():
        try:
            with open(p, "ab"):
                pass
        except OSError as e:
            ap.error(f"{flag} {path}: cannot overwrite it ({e.strerror or e})")


def save_figures(p1, p2, p3, folder) -> list[Path]:
    """Write the lecture's four figures as PNG files into `folder`; returns their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in lecture_figures(p1, p2, p3).items():
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    print(f"figures: {', '.join(str(p) for p in paths)}")
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m helpers", description="Run the lecture's three parts and print "
                                                                          "a summary.")
    add_lecture_args(ap)
    ap.add_argument("--figures", default=None, help="folder to save the lecture's figures (PNG) in")
    a = ap.parse_args(argv)
    if a.figures:
        writable_folder(ap, "--figures", a.figures)
    matplotlib.use("Agg")
    model, tok, c = checked_setup(ap, a)
    if train_mode_note(model):
        print(train_mode_note(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainModeWarning)     # said once, above
        p1 = part1(model, tok, c, a.layer, a.q, a.method)
        p2 = part2(model, tok, c)
        p3 = part3(model, tok, p1, p2)
    print(p1.summary())
    print(p2.summary())
    print(p3.summary())
    if a.figures:
        save_figures(p1, p2, p3, a.figures)
