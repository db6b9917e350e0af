"""Checker for notebook 02's exercise (d): the logit difference at a [MASK].

    (d) mask_logit_diff   the sign flipped, a token off ([CLS] forgotten or counted twice), [CLS] or [SEP] read
                          instead of the [MASK], probabilities (after softmax) instead of logits, logit(expected)
                          alone, both words read as the same token ([CLS] from tokenizer(word)['input_ids']);
                          the model's weights, mode or settings changed

The cases ask for each pronoun pair in both directions (she-he and he-she, him-her and her-him).
"""
from __future__ import annotations

import numpy as np
import torch

from ..arch import model_device
from ..hooks import eval_mode
from ..readout import diff_text, masked_logits, word_ids
from ..stimuli import mask_positions
from ._guard import judging, remembered
from ._report import diagnose, num, one_number, tolerance, verdict

PREDICT_CASES = [("Anna said that [MASK] would come to the party later.", "she", "he"),
                 ("The boy was tired, so his mother carried [MASK] home.", "him", "her"),
                 ("My uncle called to say that [MASK] would fix the roof.", "he", "she"),
                 ("The girls lost the match, but [MASK] played well.", "they", "we"),
                 ("The little girl waved, so I waved back at [MASK].", "her", "him")]
TOL = 1e-4


@torch.no_grad()
def _rows(model, tokenizer, text: str) -> np.ndarray:
    """The logits of every token of `text`: [n_tokens, vocab] (float64, CPU)."""
    with eval_mode(model):
        enc = tokenizer(text, return_tensors="pt").to(model_device(model))
        return model(**enc).logits[0].double().cpu().numpy()


def reference(model, tokenizer) -> np.ndarray:
    """The kit's logit(expected) - logit(other) for every case: [n_cases]."""
    lg = [masked_logits(model, tokenizer, [t], [e, o])[0, 0] for t, e, o in PREDICT_CASES]
    return np.array([x[0] - x[1] for x in lg], dtype=np.float64)


def variants(model, tokenizer, want: np.ndarray) -> dict:
    """{key: (text, [n_cases])} of the usual wrong answers on this model."""
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

    return {
        "sign-flipped": ("your sign is flipped: the kit reports logit(expected) - logit(other), so that > 0 means "
                         "the model prefers the right word (and a lesion that works makes it drop)", -want),
        "forgot-cls": ("you read one token too early: you forgot [CLS]. The [MASK]'s index counts [CLS] at 0: find "
                       "it in tokenizer(text)['input_ids'] (== tokenizer.mask_token_id), not in "
                       "tokenizer.tokenize(text)", at(-1)),
        "cls-twice": ("you read one token too late: did you add 1 for [CLS] to an index that already counts it?",
                      at(1)),
        "read-cls": ("you read the logits at index 0 ([CLS]), not at the [MASK]", at(where=0)),
        "read-sep": ("you read the last token ([SEP]), not the [MASK]", at(where=-1)),
        "probabilities": ("you compared probabilities (after softmax), not logits: a probability difference depends "
                          "on every other word of the vocabulary; the logit difference compares just the two words "
                          "(it is log P(expected) / P(other)). Subtract the logits themselves", at(f=softmax)),
        "expected-only": ("you returned logit(expected) alone: subtract logit(other)", at(only=True)),
        "same-token": ("your difference is 0: both words became the same token. tokenizer(word)['input_ids'] starts "
                       "with [CLS]; take the word's own id with tokenizer.convert_tokens_to_ids(word)",
                       np.zeros_like(want)),
    }


def mask_logit_diff(fn, model, tokenizer) -> None:
    """(d) fn(model, tokenizer, text, expected, other) -> logit(expected) - logit(other) at the text's [MASK]."""
    __tracebackhide__ = True
    ex = "(d) mask_logit_diff"
    with judging(ex, model, tokenizer) as j:
        want = remembered(("d", id(model)), lambda: reference(model, tokenizer))
        named = remembered(("d-variants", id(model)), lambda: variants(model, tokenizer, want))
        raw = [j.call(fn, model, tokenizer, t, e, o, context=f"on {t!r} ({e!r} vs {o!r})")
               for t, e, o in PREDICT_CASES]
        got = np.array([one_number(ex, v, f"for {t!r}") for v, (t, _, _) in zip(raw, PREDICT_CASES)])
        tol = max(tolerance(v, TOL) for v in raw)
        scale = max(1.0, float(np.abs(want).max()))
        if np.allclose(got, want, atol=tol * scale, rtol=0):
            shown = ", ".join(diff_text(e, o, d) for (_, e, o), d in zip(PREDICT_CASES, want))
            return verdict(ex, want, named, tol, f"logit(expected) - logit(other) right at {len(want)} [MASK]s, "
                                                 f"both directions ({shown})")
        k = int(np.flatnonzero(np.abs(got - want) > tol * scale)[0])
        t, e, o = PREDICT_CASES[k]
        diagnose(ex, got, named, f"for {t!r} you returned {num(got[k])}, the kit's logit({e}) - logit({o}) there is "
                                 f"{num(want[k])}; check the [MASK]'s index, the two words' ids and the order of "
                                 f"the subtraction", tol)
