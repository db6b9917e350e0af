"""One sign, one word order, everywhere (README "Conventions"): the notebooks, the explorer, the report and
`python -m helpers` report the demo's working lesion as a drop of logit(expected) - logit(other), and every
two-word logit table lists the words in the contrast's order."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.cli import main as cli_main
from helpers.explorer import Session, Settings
from helpers.lecture import part1, part2, part3
from helpers.report import build_report
from helpers.stimuli import list_contrasts, load_contrast

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
DIFF = re.compile(r"\b(\w+)-(\w+) ([+-]\d+\.\d+) -> ([+-]\d+\.\d+)")            # readout.diff_text
ORDER = {frozenset(load_contrast(n).words): load_contrast(n).words for n in list_contrasts()}
PAIR = re.compile(r"\b(\w+) (-?\d+\.\d+)(?: -> -?\d+\.\d+)?, (\w+) (-?\d+\.\d+)")   # "him 13.62, her 16.47"


def _outputs(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def demo(standin):
    model, tok = standin
    p1 = part1(model, tok, "him_her")
    p2 = part2(model, tok, "him_her")
    return p1, p2, part3(model, tok, p1, p2)


def _part3_diffs(text: str) -> list[tuple[str, str, float, float]]:
    line = next(x for x in text.splitlines() if x.startswith("Part 3 |"))
    return [(e, o, float(b), float(a)) for e, o, b, a in DIFF.findall(line)]


def test_the_demo_lesion_is_a_drop_of_expected_minus_other(demo):
    p1, p2, p3 = demo
    for (e, o, before, after), w in zip(p3.logit_diffs(), p2.slot_words):
        assert e == w and o == p2.contrast.foil(w)            # the expected word first
        assert after < before, f"zeroing the '{w}' neurons at its slot must lower {e}-{o}"
    assert [(e, o) for e, o, _, _ in _part3_diffs(p3.summary())] == [(w, p2.contrast.foil(w)) for w in p2.slot_words]


def test_the_cli_the_report_and_every_notebook_print_the_same_demo_lesion(standin, demo, capsys):
    p3 = demo[2]
    want = _part3_diffs(p3.summary())
    cli_main(["--model", "stand-in"])
    assert _part3_diffs(capsys.readouterr().out) == want
    rep = build_report(*standin, controls=False, log=None)
    keys = dict(rep.key_numbers)
    for e, o, b, a in want:
        assert keys[f"[MASK]={e}"].startswith(f"{e}-{o} {b:+.2f} -> {a:+.2f}")
    seen = 0
    for nb in NOTEBOOKS:
        text = _outputs(nb)
        if "Part 3 |" in text:
            assert _part3_diffs(text) == want, nb.name
            seen += 1
    assert seen >= 1, "no notebook prints Part 3's summary"


def test_the_explorer_reports_the_lesion_of_its_default_as_a_drop(standin):
    """The explorer's default: the 'her' neurons, zeroed at the [MASK] of the contrast's first test line (a
    'her' line): her-him drops."""
    model, tok = standin
    r = Session(model, tok).compute(Settings("him_her"))
    (e, o, before, after), = r.diffs()
    assert (e, o, r.word) == ("her", "him", "her") and after < before
    assert f"her-him {before:+.2f} -> {after:+.2f}" in r.summary()


def test_every_two_word_logit_table_lists_the_contrasts_words_in_order(demo):
    """In every notebook's printed output, Part 2's summary and the explorer's: when two contrast words are
    listed with their logits side by side, they come in contrast.words order (him before her)."""
    texts = {nb.name: _outputs(nb) for nb in NOTEBOOKS}
    texts["part2"] = demo[1].summary()
    found = 0
    for name, text in texts.items():
        for x, _, y, _ in PAIR.findall(text):
            key = frozenset((x.lower(), y.lower()))
            if key in ORDER and x.lower() != y.lower():
                assert (x.lower(), y.lower()) == ORDER[key], f"{name}: '{x} ..., {y} ...' is not in contrast order"
                found += 1
    assert found >= 4
