"""Checker for notebook 02: (d) the logit difference at a [MASK].

    (d) mask_logit_diff   the sign flipped, a token off ([CLS] forgotten or counted twice), [CLS] or [SEP] read
                          instead of the [MASK], probabilities (after softmax) instead of logits, logit(expected)
                          alone, both words read as the same token ([CLS] from tokenizer(word)['input_ids'])
"""
from __future__ import annotations

import numpy as np
import torch

from ..arch import model_device
from ..hooks import eval_mode
from ..readout import diff_text, masked_logits, word_ids
from ..stimuli import mask_positions
from ._report import Mistake, as_array, close, diagnose, passed, run

PREDICT_CASES = [("Anna said that [MASK] would come to the party later.", "she", "he"),
                 ("The boy was tired, so his mother carried [MASK] home.", "him", "her"),
                 ("The girls lost the match, but [MASK] played well.", "they", "we")]


def one_number(ex: str, value, text: str) -> float:
    """The student's result for `text` as one float (a float, a 0-d or one-element tensor/array)."""
    if value is None:
        raise Mistake(ex, f"for {text!r} your function returned None: is the `return` line missing?")
    v = as_array(value, ex, "your result")
    if v.size != 1:
        raise Mistake(ex, f"for {text!r} you returned {v.size} numbers (shape {v.shape}); return one float, "
                          f"logit(expected) - logit(other)")
    return float(v.ravel()[0])


@torch.no_grad()
def _rows(model, tokenizer, text: str) -> np.ndarray:
    """The logits of every token of `text`: [n_tokens, vocab] (float64, CPU)."""
    with eval_mode(model):
        enc = tokenizer(text, return_tensors="pt").to(model_device(model))
        return model(**enc).logits[0].double().cpu().numpy()


def mask_logit_diff(fn, model, tokenizer) -> None:
    """(d) fn(model, tokenizer, text, expected, other) -> logit(expected) - logit(other) at the text's [MASK]."""
    __tracebackhide__ = True
    ex = "(d) mask_logit_diff"
    got = np.array([one_number(ex, run(ex, fn, model, tokenizer, t, e, o), t) for t, e, o in PREDICT_CASES])
    lg = [masked_logits(model, tokenizer, [t], [e, o])[0, 0] for t, e, o in PREDICT_CASES]
    want = np.array([x[0] - x[1] for x in lg])
    if close(got, want, 1e-4):
        shown = ", ".join(diff_text(e, o, d) for (_, e, o), d in zip(PREDICT_CASES, want))
        return passed(ex, f"logit(expected) - logit(other) right at {len(want)} [MASK]s ({shown})")
    rows = [_rows(model, tokenizer, t) for t, _, _ in PREDICT_CASES]
    ids = [word_ids(tokenizer, [e, o]) for _, e, o in PREDICT_CASES]
    pos = [mask_positions(tokenizer, [t])[0][0] for t, _, _ in PREDICT_CASES]

    def at(shift=0, where=None, f=lambda x: x, only=False):
        out = []
        for r, (ie, io), p in zip(rows, ids, pos):
            x = f(r[p + shift] if where is None else r[where])
            out.append(x[ie] if only else x[ie] - x[io])
        return np.array(out)

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    diagnose(ex, got, {
        "your sign is flipped: the kit reports logit(expected) - logit(other), so that > 0 means the model "
        "prefers the right word (and a lesion that works makes it drop)": -want,
        "you read one token too early: you forgot [CLS]. The [MASK]'s index counts [CLS] at 0: find it in "
        "tokenizer(text)['input_ids'] (== tokenizer.mask_token_id), not in tokenizer.tokenize(text)": at(-1),
        "you read one token too late: did you add 1 for [CLS] to an index that already counts it?": at(1),
        "you read the logits at index 0 ([CLS]), not at the [MASK]": at(where=0),
        "you read the last token ([SEP]), not the [MASK]": at(where=-1),
        "you compared probabilities (after softmax), not logits: a probability difference depends on every other "
        "word of the vocabulary; the logit difference compares just the two words (it is log P(expected) / "
        "P(other)). Subtract the logits themselves": at(f=softmax),
        "you returned logit(expected) alone: subtract logit(other)": at(only=True),
        "your difference is 0: both words became the same token. tokenizer(word)['input_ids'] starts with [CLS]; "
        "take the word's own id with tokenizer.convert_tokens_to_ids(word)": np.zeros_like(want),
    })
    raise Mistake(ex, f"your differences {np.round(got, 2).tolist()} are not the kit's {np.round(want, 2).tolist()} "
                      f"(for {[f'{e}-{o}' for _, e, o in PREDICT_CASES]}); check the [MASK]'s index, the two "
                      f"words' ids and the order of the subtraction")
