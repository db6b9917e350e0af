"""Assemble the stand-in's training corpus (one document per line).

Sources (Debian packages; `apt-get install fortunes dict-gcide wordnet-base`):
  fortunes      entries split on '%' lines, attributions dropped
  dict-gcide    definitions and quotations, markup stripped, split into sentences
  wordnet-base  glosses and their example sentences
plus
  gender swaps  natural sentences with he/him/his rewritten to she/her (the
                sources are about 3x male-skewed; swaps balance them)
  generated     templated sentences (templates.py), half female, half male, plus
                "he <verb> her"-type clauses with two opposite-gender referents

Every document equal to (or containing) an evaluation text with its answer
filled in is dropped, so `data/eval/` stays held out.

Usage: python scripts/standin/corpus.py OUT.txt [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import templates  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FORTUNES = Path("/usr/share/games/fortunes")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
WORDNET = Path("/usr/share/wordnet")
WS = re.compile(r"\s+")


def _letters_ok(text: str, min_frac: float = 0.7) -> bool:
    return len(text) > 0 and sum(c.isalpha() or c.isspace() for c in text) / len(text) >= min_frac


def fortunes() -> list[str]:
    docs = []
    for f in sorted(FORTUNES.iterdir()):
        if f.suffix or not f.is_file():
            continue
        for entry in re.split(r"^%\s*$", f.read_text(errors="ignore"), flags=re.M):
            lines = [ln for ln in entry.splitlines() if not re.match(r"\s*--", ln)]
            text = WS.sub(" ", " ".join(lines)).strip()
            if 4 <= len(text.split()) <= 120 and _letters_ok(text):
                docs.append(text)
    return docs


def gcide() -> list[str]:
    raw = gzip.open(GCIDE, "rt", errors="ignore").read()
    raw = re.sub(r"\\[^\\\n]*\\", " ", raw)          # pronunciations \Ab*di*ca"tion\
    raw = re.sub(r"\[[^\]]*\]|\{[^}]*\}", " ", raw)   # [1913 Webster], {etym}
    raw = re.sub(r"--[A-Z][\w. ]*", " ", raw)         # --Bailey. attributions
    out = []
    for para in re.split(r"\n\s*\n", raw):
        text = WS.sub(" ", para).strip()
        for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text):
            n = len(sent.split())
            if 8 <= n <= 45 and _letters_ok(sent, 0.85) and not re.search(r"\b(n|a|v|adv|pl)\.\s", sent):
                out.append(sent)
    return out


def wordnet() -> list[str]:
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{pos}").read_text(errors="ignore").splitlines():
            if "|" not in line or line.startswith("  "):
                continue
            for piece in line.split("|", 1)[1].split(";"):
                piece = piece.strip().strip('"').strip()
                if len(piece.split()) >= 4 and _letters_ok(piece):
                    out.append(piece)
    return out


_SWAP = {"he": "she", "him": "her", "his": "her", "himself": "herself", "man": "woman",
         "men": "women", "boy": "girl", "boys": "girls", "father": "mother", "brother": "sister",
         "son": "daughter", "sons": "daughters", "uncle": "aunt", "husband": "wife", "king": "queen",
         "mr": "mrs", "gentleman": "lady", "sir": "madam", "lord": "lady", "prince": "princess",
         "fathers": "mothers", "brothers": "sisters", "kings": "queens"}
_MALE = re.compile(r"\b(" + "|".join(_SWAP) + r")\b", re.I)


def gender_swap(text: str) -> str:
    """Rewrite male words as female ones, keeping case ('He' -> 'She')."""
    def sub(m: re.Match) -> str:
        w = _SWAP[m.group(0).lower()]
        return w.capitalize() if m.group(0)[0].isupper() else w
    return _MALE.sub(sub, text)


def eval_texts() -> list[str]:
    """Held-out evaluation and demo texts, answers filled in, lower-cased."""
    texts = []
    path = ROOT / "data/eval/pronoun_cloze.tsv"
    if path.exists():
        for row in csv.DictReader(path.open(), delimiter="\t"):
            texts.append(row["text"].replace("[MASK]", row["answer"]))
    for f in sorted((ROOT / "data/contrasts").glob("*.tsv")):
        for line in f.read_text().splitlines():
            parts = line.split("\t")
            if parts[0] == "test" and len(parts) == 3:
                texts.append(parts[1].replace("[MASK]", parts[2]))
            elif parts[0] == "pair" and len(parts) == 3:
                texts.extend(parts[1:])
    return [WS.sub(" ", t).strip().lower() for t in texts]


def build(seed: int = 0, n_generated: int = 90_000) -> list[str]:
    rng = random.Random(seed)
    natural = fortunes() + gcide() + wordnet()
    print(f"natural pieces: {len(natural)}", file=sys.stderr)
    male = re.compile(r"\b(he|him|his|himself)\b", re.I)
    female = re.compile(r"\b(she|her|hers|herself)\b", re.I)
    swaps = [gender_swap(d) for d in natural if male.search(d) and not female.search(d) and rng.random() < 0.6]
    female_docs = [d for d in natural if female.search(d)]
    generated = templates.generate(n_generated, seed) + templates.generate_binding(n_generated // 2, seed)
    docs = natural + swaps + female_docs + generated
    held = eval_texts()
    held_set = set(held)
    kept = [d for d in docs if d.lower() not in held_set and not any(h in d.lower() for h in held if len(h) > 30)]
    print(f"swaps {len(swaps)}, extra female docs {len(female_docs)}, generated {len(generated)}, "
          f"dropped as held out {len(docs) - len(kept)}, total {len(kept)}", file=sys.stderr)
    rng.shuffle(kept)
    return kept


def pronoun_counts(docs: list[str]) -> dict[str, int]:
    counts = {w: 0 for w in ("he", "she", "him", "her", "his")}
    for d in docs:
        for w in re.findall(r"\b(he|she|him|her|his)\b", d.lower()):
            counts[w] += 1
    return counts


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generated", type=int, default=90_000)
    a = ap.parse_args()
    docs = build(a.seed, a.generated)
    print("pronoun counts:", pronoun_counts(docs), file=sys.stderr)
    Path(a.out).write_text("\n".join(docs) + "\n")
