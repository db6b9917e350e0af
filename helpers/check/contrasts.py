"""Checker for notebook 06: (h) a contrast file of the student's own that loads and runs."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..arch import default_layer
from ..lecture import part1
from ..readout import masked_logits, word_ids
from ..stimuli import StimulusError, list_contrasts, load_contrast
from ._report import Mistake, passed

MIN_PAIRS, MIN_TESTS = 8, 2
EXAMPLE_WORDS = {("was", "were")}      # notebook 06's own example


def own_contrast(text_or_path, model, tokenizer) -> bool:
    """(h) a contrast file (its text, or a path) with at least 8 pairs and 2 test lines, of two words the model
    reads as one token each, not a shipped set or the notebook's example; Part 1 and the test lines run on it."""
    __tracebackhide__ = True
    ex = "(h) own_contrast"
    path = Path(str(text_or_path)) if "\n" not in str(text_or_path) else None
    if path is None or not path.exists():
        folder = Path(tempfile.mkdtemp())
        path = folder / "my_contrast.tsv"
        path.write_text(str(text_or_path), encoding="utf-8")
    try:
        c = load_contrast(path)
    except StimulusError as e:
        raise Mistake(ex, f"your file does not load: {e}") from None
    shipped = {(load_contrast(n).a, load_contrast(n).b) for n in list_contrasts()}
    if (c.a, c.b) in shipped | EXAMPLE_WORDS or (c.b, c.a) in shipped | EXAMPLE_WORDS:
        raise Mistake(ex, f"{c.a!r}/{c.b!r} is a contrast the kit already has; choose two words of your own")
    if len(c.pairs) < MIN_PAIRS or len(c.tests) < MIN_TESTS:
        raise Mistake(ex, f"your file has {len(c.pairs)} pairs and {len(c.tests)} test lines; write at least "
                          f"{MIN_PAIRS} pairs (a paired t-test on fewer has little power) and {MIN_TESTS} test lines")
    try:
        word_ids(tokenizer, [c.a, c.b])
    except StimulusError as e:
        raise Mistake(ex, f"{e} (data/README.md rule 6)") from None
    r = part1(model, tokenizer, c, default_layer(model))
    lg = masked_logits(model, tokenizer, [t for t, _ in c.tests], list(c.words))[:, 0]
    right = sum(int(np.argmax(x) == c.words.index(w)) for x, (_, w) in zip(lg, c.tests))
    return passed(ex, f"{c.name!r}: {len(c.pairs)} pairs, {len(c.tests)} test lines; layer {r.layer}: "
                      f"{int(r.test.significant.sum())} neurons pass FDR; the model gets {right} of "
                      f"{len(c.tests)} test lines right")
