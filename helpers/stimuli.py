"""Stimulus sets (contrast files in data/contrasts/) and where the target word sits.

    load_contrast(name_or_path)            -> Contrast (pairs, tests, words a/b); errors name file:line
    list_contrasts()                       -> names of the shipped sets
    target_positions(tok, sentences, words) -> token index of each sentence's target word
    mask_positions(tok, texts)             -> token indices of each text's [MASK]s
    model_text(tok, text)                  -> the text with [MASK] as this tokenizer's mask token

File format: data/README.md. Wordpiece policy: a target word that the
tokenizer splits into several pieces ("herself" is one piece, "Ximena" is
three for bert-base-uncased) is located at its LAST piece by default
(wordpiece="first" for the first); when any target is split, hooks.mlp_activations
(and so lecture.part1) prints one line naming the split words and the piece used.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
CONTRASTS = DATA / "contrasts"
MASK = "[MASK]"


class StimulusError(ValueError):
    """A stimulus file or sentence is not usable; the message names the culprit."""


@dataclass
class Contrast:
    """Two conditions that differ in one word: sentences in pairs, plus [MASK] test items."""

    name: str
    a: str                                   # target word of condition A (e.g. "him")
    b: str                                   # target word of condition B (e.g. "her")
    pairs: list[tuple[str, str]]             # (sentence with a, sentence with b)
    tests: list[tuple[str, str]] = field(default_factory=list)   # (text with one [MASK], expected a or b)
    description: str = ""
    path: Path | None = None

    @property
    def sentences_a(self) -> list[str]:
        return [p[0] for p in self.pairs]

    @property
    def sentences_b(self) -> list[str]:
        return [p[1] for p in self.pairs]

    def foil(self, expected: str) -> str:
        """The other word: foil("her") == "him" for the him/her set."""
        return self.b if expected == self.a else self.a

    def __repr__(self) -> str:
        return f"Contrast({self.name!r}: {self.a!r} vs {self.b!r}, {len(self.pairs)} pairs, {len(self.tests)} tests)"


def list_contrasts() -> list[str]:
    """Names of the contrast sets shipped in data/contrasts/."""
    return sorted(p.stem for p in CONTRASTS.glob("*.tsv"))


def _count_word(text: str, word: str) -> int:
    return len(re.findall(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", text, flags=re.I))


def _misalignment(x: str, y: str) -> str:
    """'' when a pair's sentences line up word for word; else why not (a misaligned pair)."""
    wx, wy = x.split(), y.split()
    if len(wx) != len(wy):
        return f"they have {len(wx)} and {len(wy)} words"
    diff = sum(p != q for p, q in zip(wx, wy))
    if diff > 1 and 2 * (diff - 1) > len(wx) - 1:  # most words besides the target differ
        return f"they differ in {diff} of {len(wx)} words (are they from different pairs?)"
    return ""


def _contrast_path(name_or_path: str | Path) -> Path:
    """A shipped name ("him_her" or "him_her.tsv") or a path -> the file; a clear error otherwise."""
    path = Path(name_or_path)
    if not path.exists() and path.parent == Path(".") and path.suffix in ("", ".tsv"):
        path = CONTRASTS / f"{path.stem}.tsv"          # a bare name, with or without .tsv
    if not path.exists():
        raise StimulusError(f"No contrast file {str(name_or_path)!r}. Shipped sets: {', '.join(list_contrasts())}; "
                            f"or give the path of your own .tsv (format: data/README.md).")
    if path.is_dir():
        raise StimulusError(f"{str(name_or_path)!r} is a folder, not a contrast file: give a .tsv file in it "
                            f"({', '.join(p.name for p in sorted(path.glob('*.tsv'))[:5]) or 'none there'}) "
                            f"or a shipped set: {', '.join(list_contrasts())}")
    return path


def load_contrast(name_or_path: str | Path) -> Contrast:
    """Read a contrast file: a shipped name ("him_her" or "him_her.tsv") or a path. Checks every line.

    Errors name file:line: '#:' lines after the first pair/test line or set twice, a == b, a pair
    or test text that repeats an earlier line, and every rule of data/README.md.
    """
    path = _contrast_path(name_or_path)
    meta: dict[str, str] = {}
    meta_line: dict[str, int] = {}
    first_data = 0                                        # line of the first pair/test line
    seen: dict[tuple[str, str], int] = {}                 # pair (or test text) -> its line
    pairs, tests = [], []
    raw_bytes = path.read_bytes()
    try:
        lines = raw_bytes.decode("utf-8-sig").splitlines()  # -sig: a BOM from Excel/Notepad is not a line
    except UnicodeDecodeError as e:
        no = raw_bytes[:e.start].count(b"\n") + 1
        raise StimulusError(f"{path.name}:{no}: not UTF-8 text (byte {raw_bytes[e.start]:#04x}); "
                            f"save the file as UTF-8") from None
    for no, raw in enumerate(lines, 1):
        where = f"{path.name}:{no}"
        line = raw.rstrip("\r\n")
        if not line.strip() or (line.startswith("#") and not line.startswith("#:")):
            continue
        if line.startswith("#:"):
            if "=" not in line:
                raise StimulusError(f"{where}: a '#:' line needs 'key = value', got {line!r}")
            k, v = (s.strip() for s in line[2:].split("=", 1))
            if k not in ("name", "a", "b", "description"):
                raise StimulusError(f"{where}: unknown key {k!r}; use name, a, b or description")
            if first_data:
                raise StimulusError(f"{where}: '#: {k} = ...' comes after the first pair/test line "
                                    f"({path.name}:{first_data}); put every '#:' line at the top of the file")
            if k in ("a", "b") and (not v or len(v.split()) != 1):
                raise StimulusError(f"{where}: '#: {k} = <word>' needs one word, got {v!r}")
            if k in meta:
                raise StimulusError(f"{where}: '#: {k}' is set twice (first at {path.name}:{meta_line[k]}); "
                                    f"keep one")
            meta[k], meta_line[k] = v, no
            continue
        fields = line.split("\t")
        kind = fields[0]
        if kind not in ("pair", "test"):
            raise StimulusError(f"{where}: a line must start with 'pair', 'test', '#' or '#:' and a tab; got {line[:40]!r}")
        if len(fields) != 3 or not all(f.strip() for f in fields[1:]):
            found = sum(bool(f.strip()) for f in fields)
            raise StimulusError(f"{where}: a {kind} line needs 3 non-empty tab-separated fields, found {found}: "
                                f"{line[:60]!r}")
        if not first_data:
            for k in ("a", "b"):
                if k not in meta:
                    raise StimulusError(f"{where}: '#: {k} = <word>' must come before the first pair/test line")
            if meta["a"].lower() == meta["b"].lower():
                raise StimulusError(f"{path.name}:{max(meta_line['a'], meta_line['b'])}: a and b are both "
                                    f"{meta['b']!r}; a contrast needs two different target words")
            first_data = no
        x, y = fields[1].strip(), fields[2].strip()
        if kind == "pair":
            for sent, word in ((x, meta["a"]), (y, meta["b"])):
                n = _count_word(sent, word)
                if n != 1:
                    raise StimulusError(f"{where}: {sent!r} must contain {word!r} exactly once as a word, found {n}")
            why = _misalignment(x, y)
            if why:
                raise StimulusError(f"{where}: the two sentences of a pair must line up word for word "
                                    f"(data/README.md rule 3), but {why}: {x!r} / {y!r}")
            key = (" ".join(x.split()), " ".join(y.split()))
            if key in seen:
                raise StimulusError(f"{where}: this pair repeats line {seen[key]} ({path.name}:{seen[key]}); "
                                    f"each pair must appear once: {x!r} / {y!r}")
            seen[key] = no
            pairs.append((x, y))
        else:
            if x.count(MASK) != 1:
                raise StimulusError(f"{where}: a test text needs exactly one {MASK}, found {x.count(MASK)}: {x!r}")
            if y not in (meta["a"], meta["b"]):
                raise StimulusError(f"{where}: expected answer {y!r} must be {meta['a']!r} or {meta['b']!r}")
            key = (" ".join(x.split()), "test")
            if key in seen:
                raise StimulusError(f"{where}: this test text repeats line {seen[key]} ({path.name}:{seen[key]}): "
                                    f"{x!r}")
            seen[key] = no
            tests.append((x, y))
    if not pairs:
        raise StimulusError(f"{path}: no 'pair' lines (is the file empty or not tab-separated?)")
    return Contrast(meta.get("name", path.stem), meta["a"], meta["b"], pairs, tests, meta.get("description", ""), path)


def target_positions(tokenizer, sentences: Sequence[str], words: str | Sequence[str],
                     wordpiece: str = "last", verbose: bool = False) -> list[int]:
    """Token index (with special tokens, as the model sees it) of the target word in each sentence.

    Each sentence must contain its word exactly once as a whole word (case-insensitive);
    otherwise a StimulusError names the sentence and the word. wordpiece: "last" or
    "first" piece of a word split into several pieces. verbose: print one line
    naming the split words and the piece used (nothing when no word is split).
    """
    if wordpiece not in ("first", "last"):
        raise ValueError(f"wordpiece must be 'first' or 'last', got {wordpiece!r}")
    if isinstance(words, str):
        words = [words] * len(sentences)
    if len(words) != len(sentences):
        raise StimulusError(f"{len(sentences)} sentences but {len(words)} target words")
    out, split = [], {}
    for i, (sent, word) in enumerate(zip(sentences, words)):
        spans = [m.span() for m in re.finditer(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", sent, flags=re.I)]
        if not spans:
            raise StimulusError(f"sentence {i} {sent!r} does not contain the target word {word!r}")
        if len(spans) > 1:
            raise StimulusError(f"sentence {i} {sent!r} contains the target word {word!r} {len(spans)} times; "
                                f"a paired design needs exactly one target per sentence")
        enc = tokenizer(sent, return_offsets_mapping=True)
        start, end = spans[0]
        toks = [t for t, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < end and e > start]
        if not toks:
            raise StimulusError(f"sentence {i} {sent!r}: the tokenizer lost the word {word!r}")
        out.append(toks[-1] if wordpiece == "last" else toks[0])
        if len(toks) > 1:
            split.setdefault(sent[start:end], len(toks))
    if verbose and split:
        shown = ", ".join(f"{w!r} ({n} pieces)" for w, n in list(split.items())[:5])
        print(f"Wordpieces: {len(split)} target word(s) split by the tokenizer, e.g. {shown}; "
              f"each is read at its {wordpiece} piece (wordpiece={wordpiece!r}).")
    return out


def model_text(tokenizer, text: str) -> str:
    """`text` with each [MASK] written as this tokenizer's mask token (RoBERTa: <mask>)."""
    mask = getattr(tokenizer, "mask_token", None)
    return text.replace(MASK, mask) if mask and mask != MASK else text


def mask_positions(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token indices of every [MASK] in each text; a text without one is an error naming it.

    [MASK] is read as the tokenizer's own mask token (model_text), so files work for any masked LM.
    """
    if getattr(tokenizer, "mask_token_id", None) is None:
        raise StimulusError(f"{type(tokenizer).__name__} has no mask token: a [MASK] text needs a masked LM "
                            f"(for a causal LM, lesion.masked_logits predicts the next token instead)")
    out = []
    for i, t in enumerate(texts):
        ids = tokenizer(model_text(tokenizer, t))["input_ids"]
        pos = [j for j, x in enumerate(ids) if x == tokenizer.mask_token_id]
        if not pos:
            raise StimulusError(f"text {i} {t!r} has no {MASK}: put one where the word to predict goes")
        out.append(pos)
    return out
