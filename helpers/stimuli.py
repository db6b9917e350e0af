"""Stimulus sets (contrast files in data/contrasts/) and where the target word sits.

    load_contrast(name_or_path)            -> Contrast (pairs, tests, words a/b); errors name file:line
    list_contrasts()                       -> names of the shipped sets
    target_positions(tok, sentences, words) -> token index of each sentence's target word
    mask_positions(tok, texts)             -> token indices of each text's [MASK]s
    model_text(tok, text)                  -> the text with [MASK] as this tokenizer's mask token
    find_word(text, word)                  -> [(start, end)] of `word` as a whole word (case-insensitive)

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
        """The other word: foil("her") == "him" for the him/her set; a word that is neither is an error."""
        if expected not in (self.a, self.b):
            raise ValueError(f"{expected!r} is not a word of the {self.name} contrast: give {self.a!r} or {self.b!r}")
        return self.b if expected == self.a else self.a

    def __repr__(self) -> str:
        return f"Contrast({self.name!r}: {self.a!r} vs {self.b!r}, {len(self.pairs)} pairs, {len(self.tests)} tests)"


def list_contrasts() -> list[str]:
    """Names of the contrast sets shipped in data/contrasts/."""
    return sorted(p.stem for p in CONTRASTS.glob("*.tsv"))


_APOS = "'\u2019"    # ASCII and typographic apostrophe


def find_word(text: str, word: str) -> list[tuple[int, int]]:
    """(start, end) of each whole-word occurrence of `word` in `text`, case-insensitive.

    Quotes around it do not hide it ('him', \u2018him\u2019); a contraction does not count as it
    ("He's" is not "he"; see _contracted, which load_contrast refuses)."""
    w = re.escape(word)
    return [m.span() for m in re.finditer(rf"(?<![\w-])(?<!\w[{_APOS}]){w}(?![\w-])(?![{_APOS}]\w)", text, flags=re.I)]


def _contracted(text: str, word: str) -> list[str]:
    """The contractions of `word` in `text` ("He's" for "he"): the tokenizer splits them into the word,
    an apostrophe and the rest, so the word would be there a second time."""
    w = re.escape(word)
    return re.findall(rf"(?<![\w-])(?<!\w[{_APOS}]){w}[{_APOS}]\w+", text, flags=re.I)


def _count_word(text: str, word: str) -> int:
    return len(find_word(text, word))


def _pair_difference(x: str, y: str, also: int) -> str:
    """'' when a pair's sentences are the same word for word but for the target (and at most `also` more
    words: '#: also_differ'); else why not."""
    wx, wy = x.split(), y.split()
    if len(wx) != len(wy):
        return f"they have {len(wx)} and {len(wy)} words"
    diff = [(p, q) for p, q in zip(wx, wy) if p != q]
    if len(diff) > 1 + also:
        shown = ", ".join(f"{p!r}/{q!r}" for p, q in diff[:4])
        return (f"they differ in {len(diff)} words ({shown}); besides the target word "
                f"{'no other word' if also == 0 else f'at most {also}'} may differ "
                f"(for words that must agree with the target, set '#: also_differ = N' at the top)")
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
    or test text that repeats an earlier line (ignoring case and spacing), and rules 1-5 and 7 of
    data/README.md. Rule 6 (a and b are one token each) needs the tokenizer: it is checked where
    logits are read (lesion.word_ids).
    """
    path = _contrast_path(name_or_path)
    meta: dict[str, str] = {}
    meta_line: dict[str, int] = {}
    first_data = 0                                        # line of the first pair/test line
    seen: dict[tuple[str, str], int] = {}                 # pair (or test text) -> its line
    pairs, tests = [], []
    raw_bytes = path.read_bytes()
    try:
        text = raw_bytes.decode("utf-8-sig")              # -sig: a BOM from Excel/Notepad is not a line
        # lines end at \n, \r\n or \r only (str.splitlines also breaks at \x0c, U+2028, ..., which
        # would split a sentence and shift every later line number)
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
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
            if k not in ("name", "a", "b", "description", "also_differ"):
                raise StimulusError(f"{where}: unknown key {k!r}; use name, a, b, description or also_differ")
            if k == "also_differ" and not (v.isdigit() and int(v) <= 3):
                raise StimulusError(f"{where}: '#: also_differ = N' needs a whole number 0..3 (words besides the "
                                    f"target that may differ within a pair), got {v!r}")
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
            empty = sum(not f.strip() for f in fields[1:])
            raise StimulusError(f"{where}: a {kind} line needs exactly 3 tab-separated fields ({kind}, then two "
                                f"texts, none empty); found {len(fields)} field(s)"
                                + (f", {empty} of them empty (a doubled or trailing tab?)" if empty else "")
                                + f": {line[:60]!r}")
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
            for sent, word, other in ((x, meta["a"], meta["b"]), (y, meta["b"], meta["a"])):
                n = _count_word(sent, word)
                if n != 1:
                    raise StimulusError(f"{where}: {sent!r} must contain {word!r} exactly once as a word, found {n}")
                if _contracted(sent, word):
                    raise StimulusError(f"{where}: {sent!r} also contains {word!r} in {_contracted(sent, word)[0]!r}, "
                                        f"which the tokenizer reads as {word!r} + an apostrophe + the rest: a second "
                                        f"target word; write it out in full")
                if _count_word(sent, other):
                    raise StimulusError(f"{where}: {sent!r} contains the other target word {other!r} too "
                                        f"(data/README.md rule 4): the pair must differ in the target word only")
            why = _pair_difference(x, y, int(meta.get("also_differ", 0)))
            if why:
                raise StimulusError(f"{where}: the two sentences of a pair must be the same word for word but for "
                                    f"the target (data/README.md rule 3), but {why}: {x!r} / {y!r}")
            key = (" ".join(x.lower().split()), " ".join(y.lower().split()))
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
            key = (" ".join(x.lower().split()), "test")
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
        sent, word = model_text(tokenizer, sent), model_text(tokenizer, word)   # [MASK] -> <mask> (RoBERTa)
        spans = find_word(sent, word)
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
