"""Checker for notebook 01's exercise (a): the target word's token index.

    (a) target_position   [CLS] forgotten or counted twice, the first piece of a split word (with or without
                          [CLS]), a word found inside another word ('her' in 'mother'), words or characters
                          counted instead of tokens
"""
from __future__ import annotations

import numpy as np
import torch

from ..stimuli import find_word, target_positions
from ._guard import judging
from ._report import Mistake, confusable, diagnose, passed

SPLIT_CANDIDATES = ("Ximena", "Oyelaran", "Thistlewood", "Zbigniewska", "Quetzalcoatl")
INSIDE = ("The mother waved to her from the bus.", "her")    # 'her' is also inside 'mother'


def returned(ex: str, value, what: str = "your function"):
    """`value`, unless it is None (a function without `return`): then a Mistake that says so."""
    if value is None:
        raise Mistake(ex, f"{what} returned None: is the `return` line missing (or inside the loop)?", "returned-none")
    return value


def split_word(tokenizer) -> tuple[str, list[str]]:
    """A name this tokenizer splits into two or more pieces, and its pieces."""
    for w in SPLIT_CANDIDATES:
        pieces = tokenizer.tokenize(w)
        if len(pieces) >= 2:
            return w, pieces
    raise RuntimeError("no candidate word is split by this tokenizer")    # pragma: no cover


def cases(tokenizer) -> list[tuple[str, str]]:
    """(sentence, word) pairs the check asks about: a word at the start, a split word, quotes, 'mother'."""
    w, _ = split_word(tokenizer)
    return [("She thanked him for the ride.", "him"), ("Him, she had never met before.", "him"),
            (f"The letter from {w} arrived today.", w), ("They said 'her' twice, then left.", "her"),
            (f"{w} waved at us from the bus.", w), INSIDE]


def _one_int(ex: str, value, sentence: str) -> int:
    """The student's position as an int: an int, a numpy integer or a one-element integer tensor/array."""
    returned(ex, value)
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)) \
            or not float(value).is_integer():
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        raise Mistake(ex, f"for {sentence!r} you returned {type(value).__name__} {shown}; return one int, the index "
                          f"of one token (a list or an array of indices is not one position)", "not-one-int")
    return int(value)


def _substring_positions(tokenizer, cs) -> np.ndarray:
    """Where a solution lands that finds the word's letters anywhere (str.index), not as a whole word."""
    out = []
    for s, w in cs:
        start = s.lower().index(w.lower())
        end = start + len(w)
        offs = tokenizer(s, return_offsets_mapping=True)["offset_mapping"]
        out.append([i for i, (a, b) in enumerate(offs) if b > a and a < end and b > start][-1])
    return np.array(out)


def _tokens_shown(tokenizer, sentence: str) -> str:
    toks = tokenizer.convert_ids_to_tokens(tokenizer(sentence)["input_ids"])
    return " ".join(f"{i}:{t}" for i, t in enumerate(toks))


def variants(tokenizer, cs, want: np.ndarray) -> dict:
    """{key: (text, positions)} of the usual mistakes on `cs`."""
    w, pieces = split_word(tokenizer)
    first = np.array([target_positions(tokenizer, [s], x, wordpiece="first")[0] for s, x in cs])
    words = np.array([[y.strip(".,'").lower() for y in s.split()].index(x.lower()) for s, x in cs])
    chars = np.array([find_word(s, x)[0][0] for s, x in cs])
    return {
        "forgot-cls": ("your index is one too small for every sentence: you forgot [CLS]. The tokenizer puts [CLS] "
                       "at index 0 of input_ids and the model sees it, so count it (take the indices from "
                       "tokenizer(sentence), special tokens included, not from tokenizer.tokenize(sentence))", want - 1),
        "cls-twice": ("your index is one too large for every sentence: [CLS] is index 0 itself, so the first word "
                      "is at 1 (did you add 1 for [CLS] to indices that already count it?)", want + 1),
        "first-piece": (f"right for one-piece words, but {w!r} is split into {pieces} and you returned its FIRST "
                        f"piece; the kit reads a split word at its LAST piece ({pieces[-1]!r}), where the model "
                        f"has read the whole word", first),
        "first-piece-no-cls": (f"{w!r} is split into {pieces}: you returned its first piece, and every index is one "
                               f"too small (count [CLS] at 0, and take the LAST piece)", first - 1),
        "letters-not-word": (f"right, except in {INSIDE[0]!r}: you found the letters 'her' inside 'mother' "
                             f"(str.index / str.find look for letters, not words). Look for the whole word, e.g. "
                             f"re.search(r'\\b' + word + r'\\b', sentence, re.IGNORECASE), or compare tokens",
                             _substring_positions(tokenizer, cs)),
        "counted-words": ("you counted words (sentence.split()), not tokens: the model's positions are token "
                          "indices, with [CLS] first and words split into pieces", words),
        "character-offset": ("you returned a character offset into the sentence, not a token index (tokenizer(..., "
                             "return_offsets_mapping=True) gives each token's characters: pick the tokens inside "
                             "the word)", chars),
    }


def target_position(fn, tokenizer) -> None:
    """(a) fn(tokenizer, sentence, word) -> the token index of `word` (its last piece), [CLS] counted."""
    __tracebackhide__ = True
    ex = "(a) target_position"
    with judging(ex, tokenizer=tokenizer) as j:
        cs = cases(tokenizer)
        w, pieces = split_word(tokenizer)
        want = np.array([target_positions(tokenizer, [s], x)[0] for s, x in cs])
        named = variants(tokenizer, cs, want)
        assert not confusable(want, named, 0), confusable(want, named, 0)      # the cases tell them apart

        def context(s, x):
            split = f", which this tokenizer splits into {pieces}: it is not one token" if x == w else ""
            return f"on {s!r} (word {x!r}{split})"

        got = np.array([_one_int(ex, j.call(fn, tokenizer, s, x, context=context(s, x)), s) for s, x in cs])
        if np.array_equal(got, want):
            return passed(ex, f"right on {len(cs)} sentences, including a word split into pieces "
                              f"({w!r} -> {pieces}) and 'her' next to 'mother'")
        bad = int(np.flatnonzero(got != want)[0])
        extra = " (the letters 'her' are also inside 'mother': find the whole word)" if cs[bad] == INSIDE else ""
        diagnose(ex, got, named, f"for {cs[bad][0]!r} and the word {cs[bad][1]!r} you returned {got[bad]}, but the "
                                 f"word is at {want[bad]}{extra}. The model's tokens, with their indices: "
                                 f"{_tokens_shown(tokenizer, cs[bad][0])}", tol=0)
