"""Reading predictions: the logits of chosen words at chosen tokens.

    word_ids(tok, words)                                 vocabulary id of each word (one token each, or an error)
    logits_at(model, tok, texts, positions, words)       -> [n_texts, n_positions, n_words]
    masked_logits(model, tok, texts, words)              -> [n_texts, n_masks, n_words] at each [MASK]
    argmax_at(model, tok, texts, positions)              -> [n_texts] the top word's id at each text's token
    prediction_positions(model, tok, texts)              where the prediction at each [MASK] is read: the
                                                         [MASK] (a masked LM) or the token before it (a causal LM)
    next_token_position(tok, text, start)                the last token before character `start` (causal LMs)
    diff_text(expected, other, before, after)            "her-him +2.85 -> +0.62": the kit's one way to
                                                         print a logit difference before and after a lesion

Sign convention, everywhere in the kit: a prediction or a lesion is reported as
logit(expected) - logit(other), the word that belongs at the [MASK] minus the one that does not.
Positive = the model prefers the right word; a lesion that works makes it drop.

Causal LMs (GPT-2, Llama, ...) have no [MASK]: their prediction "at a [MASK]" is the next-token
prediction from the text before it, so the right context is dropped. It is read at the last token
before the [MASK]; since token t of a causal LM sees tokens 0..t only, reading (or lesioning) the whole
text there equals cutting the text at the [MASK].

Readers run in eval mode (dropout off) with right padding, whatever the model and tokenizer were set
to; both settings are restored afterwards (hooks.eval_mode, hooks.right_padding). They run on the
model's device and return numpy arrays on the CPU.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import _args
from .arch import check_lengths, is_causal, model_device
from .hooks import eval_mode, refuse_row_edits, right_padding
from .stimuli import MASK, StimulusError, mask_positions, model_text


def word_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Vocabulary id of each word (a str is one word); a word the tokenizer splits, or does not know ([UNK]),
    is an error naming it."""
    if isinstance(words, str):
        words = [words]
    ids = []
    space = _needs_space(tokenizer)
    unk = getattr(tokenizer, "unk_token_id", None)
    for w in words:
        pieces = tokenizer.tokenize(" " + w if space else w)
        if len(pieces) != 1:
            raise StimulusError(f"the word {w!r} is {len(pieces)} tokens for this tokenizer ({pieces}); "
                                f"logits can only be read for one-token words")
        i = tokenizer.convert_tokens_to_ids(pieces[0])
        if unk is not None and i == unk:
            raise StimulusError(f"the word {w!r} is not in the vocabulary of this tokenizer (it becomes "
                                f"{tokenizer.unk_token!r}, whose logit says nothing about {w!r}); "
                                f"choose a word the tokenizer knows as one token")
        ids.append(i)
    return ids


def _needs_space(tokenizer) -> bool:
    """BPE tokenizers (GPT-2, RoBERTa) mark a word after a space differently from a word start."""
    return tokenizer.tokenize(" x")[0] != tokenizer.tokenize("x")[0]


def diff_text(expected: str, other: str, before: float, after: float | None = None) -> str:
    """"her-him +2.85 -> +0.62" (logit(expected) - logit(other), before -> after a lesion), or "her-him +2.85"."""
    out = f"{expected}-{other} {before:+.2f}"
    return out if after is None else f"{out} -> {after:+.2f}"


@torch.no_grad()
def logits_at(model, tokenizer, texts: Sequence[str], positions=None, words: Sequence[str] | None = None,
              same_positions=None) -> np.ndarray:
    """Logits of `words` at token positions of each text: array [n_texts, n_positions, n_words].

    positions: one entry per text, each an int or a list of ints, all of the same length; e.g.
    [5, 3, 7] reads token 5 of text 0, 3 of text 1, 7 of text 2, and mask_positions(tok, texts)
    reads every [MASK]. same_positions (instead of positions): the same token index or indices in
    every text. Indices count special tokens, as stimuli.target_positions gives them, and must lie
    within their own text (0..n_tokens-1; no negative indices, no padding).
    """
    texts = _args.texts(texts)
    if words is None:
        raise TypeError("logits_at needs words=[...]: the words whose logits to read")
    ids = word_ids(tokenizer, [words] if isinstance(words, str) else words)
    rows = _args.per_text_positions(positions, len(texts), same_positions)
    if not rows[0]:
        raise ValueError("positions is empty: give the token indices to read, e.g. [3] or [[3], [5]]")
    for i, r in enumerate(rows):
        if len(r) != len(rows[0]):
            raise ValueError(f"positions for text {i} has {len(r)} entries but text 0 has {len(rows[0])}: every "
                             f"text needs the same number (masked_logits handles texts with different numbers "
                             f"of [MASK]s)")
    out = np.empty((len(texts), len(rows[0]), len(ids)), dtype=np.float32)
    for i, logits in _logits_rows(model, tokenizer, texts, rows):
        out[i] = logits[:, ids].float().cpu().numpy()
    return out


@torch.no_grad()
def argmax_at(model, tokenizer, texts: Sequence[str], positions) -> np.ndarray:
    """The vocabulary id with the highest logit at each text's one position: [n_texts] (positions: one
    token index per text)."""
    texts = _args.texts(texts)
    rows = [[p] for p in _args.one_position_per_text(positions, len(texts))]
    out = np.empty(len(texts), dtype=np.int64)
    for i, logits in _logits_rows(model, tokenizer, texts, rows):
        out[i] = int(logits[0].argmax())
    return out


def _logits_rows(model, tokenizer, texts: list[str], rows: list[list[int]]):
    """Yield (i, logits [len(rows[i]), vocab]) for each text, from forward passes in eval mode with right
    padding on the model's device; checks lengths and positions first."""
    model_texts = [model_text(tokenizer, t) for t in texts]  # [MASK] -> the tokenizer's mask token
    lengths = [len(tokenizer(t)["input_ids"]) for t in model_texts]
    check_lengths(model, texts, lengths)
    _args.check_in_range(rows, lengths, texts)
    # a tokenizer without a pad token (GPT-2) cannot batch: one text per forward pass
    batches = [list(range(len(texts)))] if tokenizer.pad_token is not None else [[i] for i in range(len(texts))]
    if len(batches) > 1:
        refuse_row_edits(model, "a tokenizer without a pad token makes the kit run one text per forward pass, "
                                "so its batch rows are not your texts")
    device = model_device(model)
    with right_padding(tokenizer), eval_mode(model):
        for b in batches:
            enc = tokenizer([model_texts[i] for i in b], return_tensors="pt", padding=len(b) > 1).to(device)
            logits = model(**enc).logits
            for k, i in enumerate(b):
                yield i, logits[k, rows[i]]


@torch.no_grad()
def masked_logits(model, tokenizer, texts: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """Logits of `words` at every [MASK] of each text: array [n_texts, n_masks, n_words].

    texts: one string or a list. Texts may hold different numbers of [MASK]s; missing slots
    are NaN. A text with no [MASK] is an error. For a causal LM (GPT-2) the text is cut at its
    one [MASK] and the next-token logits are returned (a text that starts with [MASK] is read after
    the tokenizer's start-of-text token).
    """
    texts = _args.texts(texts)
    if isinstance(words, str):
        words = [words]
    if is_causal(model):
        return _next_token_logits(model, tokenizer, texts, words)
    pos = mask_positions(tokenizer, texts)
    if len({len(p) for p in pos}) > 1:
        refuse_row_edits(model, "masked_logits runs texts with different numbers of [MASK]s in separate "
                                "batches, so its batch rows are not your texts")
    width = max(len(p) for p in pos)
    out = np.full((len(texts), width, len(words)), np.nan, dtype=np.float32)
    for k in sorted({len(p) for p in pos}):
        rows = [i for i, p in enumerate(pos) if len(p) == k]
        out[rows, :k] = logits_at(model, tokenizer, [texts[i] for i in rows], [pos[i] for i in rows], words)
    return out


def _next_token_logits(model, tokenizer, texts, words) -> np.ndarray:
    """[n_texts, 1, n_words]: the causal model's logits for the token after the text before each [MASK]."""
    prefixes = []
    for i, t in enumerate(texts):
        if t.count(MASK) != 1:
            raise StimulusError(f"text {i} {t!r}: a causal model predicts one next token, so the text needs "
                                f"exactly one {MASK} (found {t.count(MASK)})")
        pre = t.split(MASK)[0].rstrip()
        if not pre:
            pre = getattr(tokenizer, "bos_token", None) or ""
        if not pre:
            raise StimulusError(f"text {i} {t!r}: a causal model predicts the [MASK] from the words before it, "
                                f"and there are none (and the tokenizer has no start-of-text token)")
        prefixes.append(pre)
    ids = word_ids(tokenizer, words)
    out = np.empty((len(texts), 1, len(ids)), dtype=np.float32)
    device = model_device(model)
    with eval_mode(model):
        for i, pre in enumerate(prefixes):  # one at a time: GPT-2 has no pad token by default
            enc = tokenizer(pre, return_tensors="pt").to(device)
            out[i, 0] = model(**enc).logits[0, -1, ids].float().cpu().numpy()
    return out


def prediction_positions(model, tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Where the prediction at each text's [MASK] is read: one list per text (the kit's `positions`).

    A masked LM: every [MASK] (stimuli.mask_positions). A causal LM (arch.is_causal): the last token before
    the text's one [MASK], where it predicts the next token from the text before it (the right context is
    dropped); a lesion at that token changes that prediction, as one at a [MASK] does in a masked LM.
    """
    texts = _args.texts(texts)
    if not is_causal(model):
        return mask_positions(tokenizer, texts)
    out = []
    for i, t in enumerate(texts):
        if t.count(MASK) != 1:
            raise StimulusError(f"text {i} {t!r}: a causal model predicts one next token, so the text needs "
                                f"exactly one {MASK} (found {t.count(MASK)})")
        out.append([next_token_position(tokenizer, t, t.index(MASK), i)])
    return out


def next_token_position(tokenizer, text: str, start: int, i: int = 0) -> int:
    """The index, among `text`'s tokens, of the last token of text[:start] (spaces before `start` left out):
    where a causal LM predicts what begins at character `start`. An error names text `i` when nothing comes
    before (and the tokenizer adds no start-of-text token), or when the tokenizer cuts the text before
    `start` differently alone than inside the whole text (then the two would not be the same prediction)."""
    full = tokenizer(model_text(tokenizer, text))["input_ids"]
    prefix = text[:start].rstrip()
    pre = tokenizer(model_text(tokenizer, prefix))["input_ids"]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    while pre and full[:len(pre)] != pre and pre[-1] in special:    # a tokenizer that ends every text with </s>
        pre = pre[:-1]
    if not pre:
        raise StimulusError(f"text {i} {text!r}: a causal model predicts the [MASK] from the words before it, and "
                            f"there are none (and the tokenizer adds no start-of-text token); put words before it")
    if full[:len(pre)] != pre:
        raise StimulusError(f"text {i} {text!r}: the tokenizer cuts {prefix!r} differently alone than inside the "
                            f"text, so the prediction after it is not the one inside the text; put a space before "
                            f"the {MASK} or the word")
    return len(pre) - 1

