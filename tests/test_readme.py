"""The README's code runs as written: its Python example, on the model load_mlm() gives here (the stand-in)."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_its_lesion_moves_the_logits(standin):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    code = blocks[0]
    assert "..." not in code, "no placeholders: a reader pastes this"
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)      # load_mlm() -> the stand-in here ($KIT_MODEL, offline)
    from helpers.hooks import hooks_attached
    assert hooks_attached(ns["model"]) == []
    assert ns["clean"].shape == ns["ablated"].shape == (1, 1, 2)
    assert ns["res"].negative.sum() > 0
    # zeroing the "her" neurons at the [MASK] lowers logit(her) - logit(him) there
    her_minus_him = [float(x[0, 0, 1] - x[0, 0, 0]) for x in (ns["clean"], ns["ablated"])]   # words: (him, her)
    assert her_minus_him[1] < her_minus_him[0], her_minus_him
