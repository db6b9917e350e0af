"""helpers.report: one self-contained HTML page with every figure, the summaries and the model's name."""
from __future__ import annotations

import base64
import html
import re

import pytest

from helpers.report import build_report, main, model_banner

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _has_controls() -> bool:
    try:
        from helpers import controls
    except ImportError:
        return False
    return hasattr(controls, "lesion_test")


@pytest.fixture(scope="module")
def page(tiny_model, tokenizer, tmp_path_factory):
    rep = build_report(tiny_model, tokenizer, controls=False, log=None)
    path = rep.write(tmp_path_factory.mktemp("report") / "sub" / "report.html")
    return rep, path.read_text(encoding="utf-8")


def test_page_has_the_four_lecture_figures_embedded(page):
    rep, text = page
    assert text.count("<img") == 4 == len(rep.figures)
    for b64 in IMG.findall(text):
        assert base64.b64decode(b64).startswith(b"\x89PNG")
    assert len(IMG.findall(text)) == 4
    assert not re.search(r'(src|href)="(https?:)?//', text), "the page must not load anything from outside"


def test_page_has_the_summaries_and_the_model(page):
    rep, text = page
    for title in ("Part 1", "Part 2", "Part 3", "Key numbers", "Settings"):
        assert title in text
    for s in rep.sections:
        assert html.escape(s.summary) in text
    assert "pass FDR" in text and "logit(" in text
    assert "Model: <b>tiny-bert</b>" in text
    assert "not bert-base-uncased" in text                 # never mistaken for the lecture's model
    assert "'him' neurons" in html.unescape(text) and "'her' neurons" in html.unescape(text)


def test_banner_says_when_it_is_the_stand_in():
    kind, text = model_banner("stand-in")
    assert kind == "standin" and "STAND-IN" in text and "not bert-base-uncased" in text
    kind, text = model_banner("bert-base-uncased")
    assert kind == "lecture" and "not" not in text


@pytest.mark.skipif(not _has_controls(), reason="helpers.controls is not in this checkout")
def test_controls_add_the_random_neuron_lesion_test(tiny_model, tokenizer, tmp_path):
    rep = build_report(tiny_model, tokenizer, n_draws=10, log=None)
    text = rep.write(tmp_path / "r.html").read_text()
    control = rep.sections[-1]
    assert control.title.startswith("Control") and control.figures
    assert text.count("<img") == 4 + len(control.figures) == len(rep.figures)
    assert "random neurons" in text and "10 draws" in text


def test_command_line_writes_the_page(tiny_model, tokenizer, tmp_path, capsys):
    folder = tmp_path / "tiny"
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "build" / "report.html"
    main(["--model", str(folder), "--out", str(out), "--no-controls", "--mode", "mean"])
    text = out.read_text()
    assert text.count("<img") == 4
    assert "mean ablation" in text and str(folder) in text
    assert "4 figures" in capsys.readouterr().out


def test_a_model_left_in_train_mode_is_named_on_the_page(page, tokenizer):
    """The page says when the model was left in train mode (dropout on; call model.eval()); its numbers are
    those of eval mode, as the kit measures in eval mode, and the model's mode is left as it was."""
    from conftest import tiny_bert
    rep_eval, text_eval = page
    assert rep_eval.notes == [] and "train mode" not in text_eval
    logged = []
    model = tiny_bert().train()                            # the page fixture's model (seed 0), in train mode
    rep = build_report(model, tokenizer, controls=False, log=logged.append)
    text = html.unescape(rep.html())
    assert "tiny-bert is in train mode (dropout on)" in text and "call model.eval()" in text
    assert rep.notes and rep.notes[0] in logged
    assert [s.summary for s in rep.sections] == [s.summary for s in rep_eval.sections]
    assert model.training
