"""Checker for notebook 02: (d) the logit difference at a [MASK]."""
from __future__ import annotations

import numpy as np
import torch

from ..arch import model_device
from ..hooks import eval_mode
from ..readout import logits_at, masked_logits
from ..stimuli import mask_positions
from ._report import Mistake, as_array, close, diagnose, passed, run

PREDICT_CASES = [("Anna said that [MASK] would come to the party later.", "she", "he"),
                 ("My brother called, so I thanked [MASK] for the gift.", "him", "her"),
                 ("The girls lost the match, but [MASK] played well.", "they", "we")]


def _at(model, tokenizer, text: str, pos: int, words) -> np.ndarray:
    return logits_at(model, tokenizer, [text], [[pos]], words)[0, 0]


def one_number(ex: str, value, text: str) -> float:
    v = as_array(value, ex, "your result")
    if v.size != 1:
        raise Mistake(ex, f"for {text!r} you returned {v.size} numbers (shape {v.shape}); return one float, "
                          f"logit(expected) - logit(other)")
    return float(v.ravel()[0])


def mask_logit_diff(fn, model, tokenizer) -> bool:
    """(d) fn(model, tokenizer, text, expected, other) -> logit(expected) - logit(other) at the text's [MASK]."""
    __tracebackhide__ = True
    ex = "(d) mask_logit_diff"
    got = np.array([one_number(ex, run(ex, fn, model, tokenizer, t, e, o), t) for t, e, o in PREDICT_CASES])
    lg = [masked_logits(model, tokenizer, [t], [e, o])[0, 0] for t, e, o in PREDICT_CASES]
    want = np.array([x[0] - x[1] for x in lg])
    if close(got, want, 1e-4):
        return passed(ex, f"logit(expected) - logit(other) right at {len(want)} [MASK]s "
                          f"({', '.join(f'{d:+.2f}' for d in want)})")
    pos = [mask_positions(tokenizer, [t])[0][0] for t, _, _ in PREDICT_CASES]
    n_tok = [len(tokenizer(t)["input_ids"]) for t, _, _ in PREDICT_CASES]
    shifted = lambda k: np.array([(lambda x: x[0] - x[1])(_at(model, tokenizer, t, p + k, [e, o]))  # noqa: E731
                                  for (t, e, o), p in zip(PREDICT_CASES, pos)])
    probs = []
    for (t, e, o), p in zip(PREDICT_CASES, pos):
        with torch.no_grad(), eval_mode(model):
            full = model(**tokenizer(t, return_tensors="pt").to(model_device(model))).logits[0, p].float()
        prob = torch.softmax(full, -1).cpu().numpy()
        ids = tokenizer.convert_tokens_to_ids([e, o])
        probs.append(prob[ids[0]] - prob[ids[1]])
    diagnose(ex, got, {
        "your sign is flipped: the kit reports logit(expected) - logit(other), so that > 0 means the model "
        "prefers the right word (and a lesion that works makes it drop)": -want,
        "you read one token too early: the [MASK]'s index counts [CLS] at 0 (find it where input_ids == "
        "tokenizer.mask_token_id)": shifted(-1),
        "you read one token too late": shifted(1),
        "you read the logits at index 0 ([CLS]), not at the [MASK]": np.array(
            [(lambda x: x[0] - x[1])(_at(model, tokenizer, t, 0, [e, o])) for t, e, o in PREDICT_CASES]),
        "you read the last token ([SEP]), not the [MASK]": np.array(
            [(lambda x: x[0] - x[1])(_at(model, tokenizer, t, n - 1, [e, o]))
             for (t, e, o), n in zip(PREDICT_CASES, n_tok)]),
        "you compared probabilities (after softmax), not logits: a probability difference depends on every other "
        "word; the logit difference is what decides between the two": np.array(probs),
        "your difference is 0: both 'words' are the same token. tokenizer(word)['input_ids'] starts with [CLS]; "
        "take the word's own id with tokenizer.convert_tokens_to_ids(word)": np.zeros_like(want),
    })
    raise Mistake(ex, f"your differences {np.round(got, 2).tolist()} are not the kit's {np.round(want, 2).tolist()}")
