"""Stimuli: contrast files (data/contrasts/), [MASK] evaluation sets, and where a target word sits.

    load_contrast(name_or_path)             -> Contrast (pairs, tests, words a/b); errors name file:line
    list_contrasts()                        -> names of the shipped sets
    target_positions(tok, sentences, words) -> token index of each sentence's target word
    mask_positions(tok, texts)              -> token indices of each text's [MASK]s (one list per text)
    mask_word(sentence, word)               -> the sentence with its target word replaced by [MASK]
    model_text(tok, text)                   -> the text with [MASK] as this tokenizer's mask token
    find_word(text, word)                   -> [(start, end)] of `word` as a whole word (case-insensitive)
    text_key(text), fill_mask(text, word)   how two sentences are compared; a [MASK] text filled in
    contrast_file(name_or_path)             -> the file load_contrast reads (errors as load_contrast's)
    EvalSet, cloze_set(tok, answer), masked_set(tok, contrast, word)   [MASK] texts to lesion at

File format: data/README.md. Wordpiece policy: a target word that the
tokenizer splits into several pieces ("herself" is one piece, "Ximena" is
three for bert-base-uncased) is located at its LAST piece by default
(wordpiece="first" for the first); when any target is split, capture.mlp_activations
(and so lecture.part1) prints one line naming the split words and the piece used.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
CONTRASTS = DATA / "contrasts"
MASK = "[MASK]"
CLOZE = DATA / "eval" / "pronoun_cloze.tsv"


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
    def words(self) -> tuple[str, str]:
        """(a, b): the order in which every two-word table, bar chart and logit array of the kit lists them."""
        return self.a, self.b

    @property
    def sentences_a(self) -> list[str]:
        return [p[0] for p in self.pairs]

    @property
    def sentences_b(self) -> list[str]:
        return [p[1] for p in self.pairs]

    def sign(self, word: str) -> int:
        """+1 for a, -1 for b: the sign of the paired t (a - b) that marks `word`'s neurons."""
        if word == self.a:
            return 1
        if word == self.b:
            return -1
        raise ValueError(f"{word!r} is not a word of the {self.name} contrast: give {self.a!r} or {self.b!r}")

    def foil(self, expected: str) -> str:
        """The other word: foil("her") == "him" for the him/her set; a word that is neither is an error."""
        return self.b if self.sign(expected) > 0 else self.a

    def sentences(self, word: str) -> list[str]:
        """The pair sentences of `word`'s condition."""
        return self.sentences_a if self.sign(word) > 0 else self.sentences_b

    def expected(self, text: str) -> str | None:
        """The expected word when `text` is one of the test lines (compared by text_key: "he saw [mask]." is
        "He saw [MASK]."), else None."""
        return next((w for t, w in self.tests if text_key(t) == text_key(text)), None)

    def __repr__(self) -> str:
        return f"Contrast({self.name!r}: {self.a!r} vs {self.b!r}, {len(self.pairs)} pairs, {len(self.tests)} tests)"


def list_contrasts() -> list[str]:
    """Names of the contrast sets shipped in data/contrasts/."""
    return sorted(p.stem for p in CONTRASTS.glob("*.tsv"))


_APOS = "'\u2019"    # ASCII and typographic apostrophe


def find_word(text: str, word: str) -> list[tuple[int, int]]:
    """(start, end) of each whole-word occurrence of `word` in `text`, case-insensitive.

    Quotes around it do not hide it ('him', \u2018him\u2019); a contraction or a hyphenated compound
    does not count as it ("He's" is not "he", "her-like" is not "her"; see hidden_words)."""
    w = re.escape(word)
    return [m.span() for m in re.finditer(rf"(?<![\w-])(?<!\w[{_APOS}]){w}(?![\w-])(?![{_APOS}]\w)", text, flags=re.I)]


def hidden_words(text: str, word: str) -> list[str]:
    """The chunks of `text` that hold `word` glued to another word by an apostrophe or a hyphen ("He's",
    "her-like"): find_word does not count them, but the tokenizer splits them and reads `word` there."""
    found = {s for s, _ in find_word(text, word)}
    out = []
    for m in re.finditer(rf"\b{re.escape(word)}\b", text, flags=re.I):
        if m.start() not in found:
            left = len(text[:m.start()]) - len(re.split(r"\s", text[:m.start()])[-1])
            out.append(text[left:].split()[0])
    return out


def invisible_chars(text: str) -> list[tuple[int, str]]:
    """(column, 'U+200B ZERO WIDTH SPACE') of every invisible or control character in `text` (Unicode
    categories Cf and Cc), and of every space or line break other than the plain space (U+00A0 NO-BREAK SPACE,
    U+2009 THIN SPACE, U+2028, ...: categories Zs, Zl, Zp): they change how a word is tokenized without
    showing on screen (a no-break space looks like a space but is not one to a BPE tokenizer)."""
    return [(k, f"U+{ord(ch):04X} {unicodedata.name(ch, 'control character')}") for k, ch in enumerate(text)
            if unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp") or (unicodedata.category(ch) == "Zs" and ch != " ")]


def text_key(text: str) -> str:
    """How the kit compares two sentences (a typed one with the test lines, two demo lines): case and
    spacing ignored, so "he saw [mask]." and "He saw  [MASK]." are the same sentence."""
    return " ".join(text.casefold().split())


def fill_mask(text: str, word: str) -> str:
    """`text` with each [MASK] replaced by `word`, capitalised where the [MASK] starts a sentence
    ("[MASK] left." and "he" -> "He left.")."""
    return re.sub(r"(^\s*|[.!?][\"'\u201d\u2019]?\s+)?\[MASK\]",
                  lambda m: m.group(1) + word[:1].upper() + word[1:] if m.group(1) is not None else word, text)


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


def contrast_file(name_or_path: str | Path) -> Path:
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


def _lines(path: Path) -> list[str]:
    """The file's lines, UTF-8 (a BOM is dropped), split at \\n, \\r\\n or \\r only (str.splitlines also breaks
    at \\x0c, U+2028, ..., which would split a sentence and shift every later line number)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        no = raw[:e.start].count(b"\n") + 1
        raise StimulusError(f"{path.name}:{no}: not UTF-8 text (byte {raw[e.start]:#04x}); "
                            f"save the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_KEYS = ("name", "a", "b", "description", "also_differ")


class _Reader:
    """load_contrast's state while it reads a file line by line; every error names file:line."""

    def __init__(self, path: Path):
        self.path = path
        self.meta: dict[str, str] = {}
        self.meta_line: dict[str, int] = {}
        self.first_data = 0                                   # line of the first pair/test line
        self.seen: dict[tuple[str, str], int] = {}            # pair (or test text) -> its line
        self.pairs: list[tuple[str, str]] = []
        self.tests: list[tuple[str, str]] = []

    def fail(self, no: int, msg: str):
        raise StimulusError(f"{self.path.name}:{no}: {msg}")

    def meta_entry(self, no: int, line: str) -> None:
        if "=" not in line:
            self.fail(no, f"a '#:' line needs 'key = value', got {line!r}")
        k, v = (x.strip() for x in line[2:].split("=", 1))
        if k not in _KEYS:
            self.fail(no, f"unknown key {k!r}; use {', '.join(_KEYS[:-1])} or {_KEYS[-1]}")
        if k == "also_differ" and not (v.isdigit() and int(v) <= 3):
            self.fail(no, f"'#: also_differ = N' needs a whole number 0..3 (words besides the target that may "
                          f"differ within a pair), got {v!r}")
        if self.first_data:
            self.fail(no, f"'#: {k} = ...' comes after the first pair/test line ({self.path.name}:"
                          f"{self.first_data}); put every '#:' line at the top of the file")
        if k in ("a", "b") and (not v or len(v.split()) != 1):
            self.fail(no, f"'#: {k} = <word>' needs one word, got {v!r}")
        if k in self.meta:
            self.fail(no, f"'#: {k}' is set twice (first at {self.path.name}:{self.meta_line[k]}); keep one")
        self.meta[k], self.meta_line[k] = v, no

    def fields(self, no: int, line: str) -> tuple[str, str, str]:
        fields = line.split("\t")
        kind = fields[0]
        if kind not in ("pair", "test"):
            self.fail(no, f"a line must start with 'pair', 'test', '#' or '#:' and a tab; got {line[:40]!r}")
        if len(fields) != 3 or not all(f.strip() for f in fields[1:]):
            empty = sum(not f.strip() for f in fields[1:])
            self.fail(no, f"a {kind} line needs exactly 3 tab-separated fields ({kind}, then two texts, none "
                          f"empty); found {len(fields)} field(s)"
                          + (f", {empty} of them empty (a doubled or trailing tab?)" if empty else "")
                          + f": {line[:60]!r}")
        for f in fields[1:]:
            hidden = invisible_chars(f)
            if hidden:
                self.fail(no, f"{f.strip()!r} holds an invisible character at column {hidden[0][0]} "
                              f"({hidden[0][1]}); it changes how the tokenizer reads the words: delete it")
        if not self.first_data:
            self.start_data(no)
        return kind, fields[1].strip(), fields[2].strip()

    def start_data(self, no: int) -> None:
        for k in ("a", "b"):
            if k not in self.meta:
                self.fail(no, f"'#: {k} = <word>' must come before the first pair/test line")
        if self.meta["a"].lower() == self.meta["b"].lower():
            self.fail(max(self.meta_line["a"], self.meta_line["b"]),
                      f"a and b are both {self.meta['b']!r}; a contrast needs two different target words")
        self.first_data = no

    def once(self, no: int, key: tuple[str, str], what: str, shown: str) -> None:
        if key in self.seen:
            self.fail(no, f"this {what} repeats line {self.seen[key]} ({self.path.name}:{self.seen[key]}): {shown}")
        self.seen[key] = no

    def pair(self, no: int, x: str, y: str) -> None:
        a, b = self.meta["a"], self.meta["b"]
        for sent, word, other in ((x, a, b), (y, b, a)):
            for w, whose in ((word, "its own"), (other, "the other")):
                glued = hidden_words(sent, w)
                if glued:
                    self.fail(no, f"{sent!r} holds {whose} target word {w!r} in {glued[0]!r}, which the "
                                  f"tokenizer reads as {w!r} plus the rest (data/README.md rule 4): write it "
                                  f"out in full or choose another word")
            n = len(find_word(sent, word))
            if n != 1:
                self.fail(no, f"{sent!r} must contain {word!r} exactly once as a word, found {n}")
            if find_word(sent, other):
                self.fail(no, f"{sent!r} contains the other target word {other!r} too (data/README.md rule 4): "
                              f"the pair must differ in the target word only")
        why = _pair_difference(x, y, int(self.meta.get("also_differ", 0)))
        if why:
            self.fail(no, f"the two sentences of a pair must be the same word for word but for the target "
                          f"(data/README.md rule 3), but {why}: {x!r} / {y!r}")
        self.once(no, (" ".join(x.lower().split()), " ".join(y.lower().split())), "pair", f"{x!r} / {y!r}")
        self.pairs.append((x, y))

    def test(self, no: int, x: str, y: str) -> None:
        if x.count(MASK) != 1:
            self.fail(no, f"a test text needs exactly one {MASK}, found {x.count(MASK)}: {x!r}")
        if y not in (self.meta["a"], self.meta["b"]):
            self.fail(no, f"expected answer {y!r} must be {self.meta['a']!r} or {self.meta['b']!r}")
        self.once(no, (" ".join(x.lower().split()), "test"), "test text", repr(x))
        self.tests.append((x, y))


def load_contrast(name_or_path: str | Path) -> Contrast:
    """Read a contrast file: a shipped name ("him_her" or "him_her.tsv") or a path. Checks every line.

    Errors name file:line: '#:' lines after the first pair/test line or set twice, a == b, a pair
    or test text that repeats an earlier line (ignoring case and spacing), an invisible character
    (zero-width space, ...), and rules 1-5 and 7 of data/README.md. Rule 6 (a and b are one token
    each) needs the tokenizer: it is checked where logits are read (readout.word_ids).
    """
    path = contrast_file(name_or_path)
    r = _Reader(path)
    for no, line in enumerate(_lines(path), 1):
        if not line.strip() or (line.startswith("#") and not line.startswith("#:")):
            continue
        if line.startswith("#:"):
            r.meta_entry(no, line)
            continue
        kind, x, y = r.fields(no, line)
        (r.pair if kind == "pair" else r.test)(no, x, y)
    if not r.pairs:
        raise StimulusError(f"{path}: no 'pair' lines (is the file empty or not tab-separated?)")
    m = r.meta
    return Contrast(m.get("name", path.stem), m["a"], m["b"], r.pairs, r.tests, m.get("description", ""), path)


def target_positions(tokenizer, sentences: Sequence[str], words: str | Sequence[str],
                     wordpiece: str = "last", verbose: bool = False) -> list[int]:
    """Token index (with special tokens, as the model sees it) of the target word in each sentence.

    Each sentence must contain its word exactly once as a whole word (case-insensitive);
    otherwise a StimulusError names the sentence and the word. So is a word the tokenizer reads as
    [UNK] (an emoji, a rare script) or glues to the characters before it. wordpiece: "last" or
    "first" piece of a word split into several pieces. verbose: print one line naming the split
    words and the piece used (nothing when no word is split).
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
        toks, (start, end) = _word_tokens(tokenizer, i, sent, word)
        out.append(toks[-1] if wordpiece == "last" else toks[0])
        if len(toks) > 1:
            split.setdefault(sent[start:end], len(toks))
    if verbose and split:
        shown = ", ".join(f"{w!r} ({n} pieces)" for w, n in list(split.items())[:5])
        print(f"Wordpieces: {len(split)} target word(s) split by the tokenizer, e.g. {shown}; "
              f"each is read at its {wordpiece} piece (wordpiece={wordpiece!r}).")
    return out


def _word_tokens(tokenizer, i: int, sent: str, word: str) -> tuple[list[int], tuple[int, int]]:
    """The token indices that cover `word` in sentence i, and the word's character span; errors name both."""
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
    pieces = tokenizer.convert_ids_to_tokens([enc["input_ids"][t] for t in toks])
    unk = getattr(tokenizer, "unk_token", None)
    if unk is not None and unk in pieces:
        raise StimulusError(f"sentence {i} {sent!r}: the tokenizer reads the target word {word!r} as {unk} "
                            f"(a character it does not know), so both conditions would look the same to the "
                            f"model; choose a word it knows")
    first = enc["offset_mapping"][toks[0]][0]
    if sent[first:start].strip() or pieces[0].startswith("##"):     # BPE offsets may include the space
        raise StimulusError(f"sentence {i} {sent!r}: the tokenizer glues the target word {word!r} to what comes "
                            f"before it (it reads {pieces[0]!r}); an invisible character there? Retype the "
                            f"space before the word")
    return toks, (start, end)


def model_text(tokenizer, text: str) -> str:
    """`text` with each [MASK] written as this tokenizer's mask token (RoBERTa: <mask>)."""
    mask = getattr(tokenizer, "mask_token", None)
    return text.replace(MASK, mask) if mask and mask != MASK else text


def mask_positions(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token indices of every [MASK] in each text: one list per text (the kit's `positions`).
    A text without a [MASK] is an error naming it.

    [MASK] is read as the tokenizer's own mask token (model_text), so files work for any masked LM.
    """
    if getattr(tokenizer, "mask_token_id", None) is None:
        raise StimulusError(f"{type(tokenizer).__name__} has no mask token: a [MASK] text needs a masked LM "
                            f"(for a causal LM, readout.masked_logits predicts the next token instead)")
    out = []
    for i, t in enumerate([texts] if isinstance(texts, str) else texts):
        ids = tokenizer(model_text(tokenizer, t))["input_ids"]
        pos = [j for j, x in enumerate(ids) if x == tokenizer.mask_token_id]
        if not pos:
            raise StimulusError(f"text {i} {t!r} has no {MASK}: put one where the word to predict goes")
        out.append(pos)
    return out


def mask_word(sentence: str, word: str) -> str:
    """`sentence` with its one whole-word `word` replaced by [MASK] (an error if not exactly once).
    "The mother saw her." masks "her", not the "her" inside "mother"; "Her" counts as "her"."""
    spans = find_word(sentence, word)
    if len(spans) != 1:
        raise StimulusError(f"{sentence!r} must contain {word!r} exactly once as a word to mask it, found {len(spans)}")
    (s, e), = spans
    return sentence[:s] + MASK + sentence[e:]


# --- [MASK] evaluation sets ----------------------------------------------------------------------
@dataclass
class EvalSet:
    """[MASK] texts to lesion at: the first [MASK] of each text, with the word that belongs there."""

    name: str
    texts: list[str]
    positions: list[int]        # token index of the [MASK] in each text: one entry per text
    target: str                 # the right word at the [MASK] (the "expected" word)
    foil: str                   # the wrong word it is compared with (the "other" word)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "EvalSet":
        idx = [int(i) for i in idx]
        return EvalSet(self.name, [self.texts[i] for i in idx], [self.positions[i] for i in idx], self.target,
                       self.foil)


def cloze_set(tokenizer, answer: str = "her", role: str = "object", path: Path = CLOZE) -> EvalSet:
    """The held-out cloze items (data/eval/pronoun_cloze.tsv) whose answer is `answer` in `role`.
    The file: a header line, then text, answer, foil, role separated by tabs; a bad line is named file:line."""
    texts, foils = [], set()
    for no, line in enumerate(_lines(Path(path))[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4 or not all(f.strip() for f in fields):
            empty = sum(not f.strip() for f in fields)
            raise StimulusError(f"{Path(path).name}:{no}: a cloze line needs exactly 4 tab-separated fields (text, "
                                f"answer, foil, role), none empty; found {len(fields)}"
                                + (f", {empty} of them empty (a doubled or trailing tab?)" if empty else "")
                                + f": {line[:60]!r}")
        text, ans, foil, r = (f.strip() for f in fields)
        if ans == answer and r == role:
            texts.append(text)
            foils.add(foil)
    if not texts:
        raise StimulusError(f"{Path(path).name} has no {role!r} items with answer {answer!r}")
    if len(foils) != 1:
        raise StimulusError(f"{Path(path).name}: {role!r} items with answer {answer!r} have several foils "
                            f"{sorted(foils)}")
    pos = [p[0] for p in mask_positions(tokenizer, texts)]
    return EvalSet(f"cloze {role} '{answer}'", texts, pos, answer, foils.pop())


def as_contrast(c) -> Contrast:
    """A Contrast, or the name/path of one (load_contrast)."""
    return c if isinstance(c, Contrast) else load_contrast(c)


def masked_set(tokenizer, contrast="him_her_context", word: str | None = None) -> EvalSet:
    """The contrast's `word` sentences (default: condition b) with the target word replaced by [MASK]."""
    c = as_contrast(contrast)
    word = c.b if word is None else word
    texts = [mask_word(s, word) for s in c.sentences(word)]
    return EvalSet(f"{c.name} masked '{word}'", texts, [p[0] for p in mask_positions(tokenizer, texts)], word,
                   c.foil(word))
