"""Checker for notebook 06: (h) a contrast file of the student's own that loads and runs.

The file is loaded with the kit's loader (every mistake in a line is named file:line), then held to what an
exercise needs: two words of the student's own (not a shipped set's, not the notebook's was/were example),
each one token for this tokenizer, at least 8 pairs and 2 test lines, and test lines that expect each of the
two words. Then Part 1 and the test lines run on it; a model that picks the other word on every test line
(the expected words swapped?) is a mistake, not a pass.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..arch import default_layer
from ..lecture import part1
from ..readout import masked_logits, word_ids
from ..stimuli import Contrast, StimulusError, list_contrasts, load_contrast
from ._guard import judging
from ._report import Mistake, passed

MIN_PAIRS, MIN_TESTS = 8, 2
EXAMPLE_WORDS = {("was", "were")}      # notebook 06's own example
FILE_NAME = "my_contrast.tsv"          # the name errors show for a file given as text


def _load(ex: str, given) -> Contrast:
    """The student's contrast: a Contrast, the file's text, or a path to it; a loader error names file:line."""
    if isinstance(given, Contrast):
        return given
    if isinstance(given, Path) or (isinstance(given, str) and "\n" not in given and given.strip().endswith(".tsv")):
        if not Path(given).is_file():
            raise Mistake(ex, f"there is no file {str(given)!r}; give the path of your .tsv file, or the file's "
                              f"text itself (a string with one line per pair or test)", "no-file")
        try:
            return load_contrast(Path(given))
        except StimulusError as e:
            raise Mistake(ex, f"your file does not load: {e}", "does-not-load") from None
    if not isinstance(given, str):
        raise Mistake(ex, f"give the text of your contrast file (a string), got {type(given).__name__}", "not-text")
    if not given.strip():
        raise Mistake(ex, "your contrast file is empty: write its '#:' lines, then its pair and test lines", "empty-file")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / FILE_NAME
        path.write_text(given, encoding="utf-8")
        try:
            return load_contrast(path)
        except StimulusError as e:
            tabs = "" if "\t" in given else (" (your text has no tab at all: in a Python string write the tab "
                                            "between fields as \\t)")
            raise Mistake(ex, f"your file does not load: {e}{tabs}", "does-not-load") from None


def own_contrast(text_or_path, model, tokenizer) -> None:
    """(h) a contrast file (its text, a path, or a function returning either) with at least 8 pairs and 2 test
    lines, of two words the model reads as one token each, not a shipped set or the notebook's example; Part 1
    and the test lines run on it."""
    __tracebackhide__ = True
    ex = "(h) own_contrast"
    with judging(ex, model, tokenizer) as j:
        given = j.call(text_or_path) if callable(text_or_path) else text_or_path
        _judge(ex, _load(ex, given), model, tokenizer)


def _judge(ex: str, c: Contrast, model, tokenizer) -> None:
    """The rules an exercise contrast must meet, then Part 1 and its test lines on the model."""
    words = {(c.a.lower(), c.b.lower()), (c.b.lower(), c.a.lower())}
    shipped = {n: load_contrast(n) for n in list_contrasts()}
    for name, s in shipped.items():
        if (s.a.lower(), s.b.lower()) in words:
            raise Mistake(ex, f"{c.a!r}/{c.b!r} are the words of the kit's own {name!r} set; choose two words of "
                              f"your own (shipped: {', '.join(sorted({f'{x.a}/{x.b}' for x in shipped.values()}))})", "shipped-words")
    if words & EXAMPLE_WORDS:
        raise Mistake(ex, f"{c.a!r}/{c.b!r} is the notebook's example above; choose two words of your own", "example-words")
    try:
        word_ids(tokenizer, [c.a, c.b])
    except StimulusError as e:
        raise Mistake(ex, f"{e} (data/README.md rule 6: the model must read each word as one token; try "
                          f"tokenizer.tokenize(word))", "several-tokens") from None
    if len(c.pairs) < MIN_PAIRS:
        raise Mistake(ex, f"your file has {len(c.pairs)} pair line(s); write at least {MIN_PAIRS} (a paired t-test "
                          f"over fewer pairs has little power, and one odd pair sways it)", "too-few-pairs")
    if len(c.tests) < MIN_TESTS:
        raise Mistake(ex, f"your file has {len(c.tests)} test line(s); write at least {MIN_TESTS} (a text with one "
                          f"[MASK], a tab, and the word that belongs there), so there is something to predict",
                      "too-few-tests")
    missing = [w for w in c.words if w not in {x for _, x in c.tests}]
    if missing:
        raise Mistake(ex, f"no test line expects {missing[0]!r}: write test lines for both words (one where "
                          f"{c.a!r} belongs and one where {c.b!r} does), so a model that always says one word does "
                          f"not look right", "one-direction")
    r = part1(model, tokenizer, c, default_layer(model))
    lg = masked_logits(model, tokenizer, [t for t, _ in c.tests], list(c.words))[:, 0]
    right = sum(int(np.argmax(x) == c.words.index(w)) for x, (_, w) in zip(lg, c.tests))
    if right == 0:
        raise Mistake(ex, f"the model picks the other word on all {len(c.tests)} test lines: is each test line's "
                          f"last field the word that belongs at its [MASK] (are they swapped)? If they are right, "
                          f"the context does not decide the word for this model (data/README.md rule 5): make it "
                          f"clearer", "tests-swapped")
    nudge = "" if right == len(c.tests) else (
        " (for a line it gets wrong: does the context decide the answer? data/README.md rule 5)")
    return passed(ex, f"{c.name!r}: {len(c.pairs)} pairs, {len(c.tests)} test lines; layer {r.layer}: "
                      f"{int(r.test.significant.sum())} neurons pass FDR; the model gets {right} of "
                      f"{len(c.tests)} test lines right{nudge}")
