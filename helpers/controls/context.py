"""The context contrast (data/contrasts/him_her_context.tsv): him/her pairs after a clause naming a man or a woman.

    context_pairs(source)              -> [(a sentence, b sentence)]
    write_context_contrast(path, source)  writes the file (deterministic; regenerate rather than edit)
"""
from __future__ import annotations

from pathlib import Path

from ..stimuli import DATA, as_contrast

CONTEXT_MALE = """Robert William Richard Charles Anthony Donald Steven Andrew Joshua Kenneth Brian Edward Ronald
Timothy Jason Jeffrey Gary Nicholas Eric Jonathan Stephen Larry Justin Brandon Benjamin Gregory Raymond
Alexander Patrick Dennis Jerry Aaron Walter Harold Jeremy Carl Keith Roger Gerald Arthur Lawrence Albert
Bruce Alan Ralph Roy Eugene Vincent Russell Louis Philip Harry Oscar Hugo Felix Simon Martin Colin Neil Ian
Victor Luke Liam Ivan""".split()
CONTEXT_FEMALE = """Mary Patricia Linda Elizabeth Barbara Susan Karen Nancy Betty Margaret Sandra Kimberly Donna
Michelle Dorothy Carol Amanda Melissa Deborah Stephanie Sharon Cynthia Kathleen Amy Shirley Angela Helen
Anna Brenda Pamela Nicole Samantha Katherine Christine Catherine Carolyn Janet Ruth Heather Diane Virginia
Julie Christina Lauren Joan Evelyn Judith Cheryl Andrea Martha Jacqueline Gloria Ann Teresa Alice Judy
Lucy Zoe Mia Eva Nina Vera Carmen Rosa""".split()
CONTEXT_CLAUSES = ["{} is my neighbor.", "{} is an old friend of ours.", "{} moved here last spring.",
                   "{} works at the library.", "{} is new in town.", "{} lives across the street.",
                   "{} is my cousin.", "{} joined our team in May."]


def context_pairs(source="him_her") -> list[tuple[str, str]]:
    """The pairs of `source` with a context clause naming a man (a) or a woman (b) put in front.

    Pair i gets male name i, female name i and clause i mod 8; the names are single
    WordPiece tokens and unambiguous; none is in a him/her test line or the cloze set (Robert is
    in one he/she test line). Deterministic:
    this is how data/contrasts/him_her_context.tsv was written.
    """
    c = as_contrast(source)
    if len(c.pairs) > min(len(CONTEXT_MALE), len(CONTEXT_FEMALE)):
        raise ValueError(f"{c.name} has {len(c.pairs)} pairs but only {len(CONTEXT_MALE)} names per gender")
    out = []
    for i, (sa, sb) in enumerate(c.pairs):
        clause = CONTEXT_CLAUSES[i % len(CONTEXT_CLAUSES)]
        out.append((f"{clause.format(CONTEXT_MALE[i])} {sa}", f"{clause.format(CONTEXT_FEMALE[i])} {sb}"))
    return out


def write_context_contrast(path: Path | None = None, source="him_her") -> Path:
    """Write the context contrast file from `source` (see context_pairs)."""
    c = as_contrast(source)
    path = Path(path) if path else DATA / "contrasts" / "him_her_context.tsv"
    head = [
        "# Object-pronoun contrast with a gendered context: each pair is a pair of him_her.tsv with a",
        "# short clause in front that names a man (him sentence) or a woman (her sentence).",
        "# Written by helpers.controls.write_context_contrast() (deterministic: pair i gets male name i,",
        "# female name i and clause i mod 8); regenerate rather than edit by hand.",
        "# Unlike him_her.tsv, the name is a second gendered word on purpose (rule 4 does not apply):",
        "# with the pronoun replaced by [MASK] (helpers.controls.mask_selection / masked_set), the name",
        "# is the ONLY difference, so neurons selected at the [MASK] see gender from context,",
        "# not the identity of the token under them.",
        f"#: name = {c.name} with context",
        f"#: a = {c.a}",
        f"#: b = {c.b}",
        "#: also_differ = 1",
        "#: description = him/her pair sentences after a clause naming a man (him) or a woman (her); "
        "the name and the pronoun differ",
    ]
    lines = head + [f"pair\t{a}\t{b}" for a, b in context_pairs(c)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


