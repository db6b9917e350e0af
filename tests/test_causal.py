"""Causal LMs in Parts 2-3 (issue 25, item 2): GPT-2 has no mask token, so its prediction "at [MASK]" is the
next-token prediction from the text before it (the right context is dropped), read and lesioned at the last
token before the slot. Tiny random GPT-2 (test_architectures.build) and a small contrast file of 8 pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.arch import is_causal, mlp_module_name
from helpers.hooks import get_module, hooks_attached
from helpers.lecture import part1, part2, part3
from helpers.readout import next_token_position, prediction_positions, word_ids
from helpers.stimuli import StimulusError, mask_positions
from test_architectures import build

NOTE = "is a causal LM: the prediction at [MASK] is the next token after the text before it; the right context is dropped"
PAIRS = ["The dog followed {} all the way home.", "Nobody told {} about the change of plans.",
         "Can you call {} later tonight?", "I lent {} my umbrella.", "We waited for {} outside.",
         "They never forgave {}.", "Please give {} a glass of water.", "The coach picked {} for the team."]
DEMO = "Julia met Tom; he hugged {} at the gate, and she drove {} home."


def write_contrast(folder) -> str:
    """A him/her contrast file: 8 pairs and one two-slot demo sentence (her, then him)."""
    lines = ["#: a = him", "#: b = her"] + [f"pair\t{p.format('him')}\t{p.format('her')}" for p in PAIRS]
    lines += [f"test\t{DEMO.format('[MASK]', 'him')}\ther", f"test\t{DEMO.format('her', '[MASK]')}\thim"]
    f = folder / "mini_him_her.tsv"
    f.write_text("\n".join(lines) + "\n")
    return str(f)


@pytest.fixture(scope="module")
def gpt2():
    return build("gpt2")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_contrast(tmp_path_factory.mktemp("contrast"))


def _next_logits(model, tok, prefix, ids, edit=None):
    """The model run on `prefix` alone: logits of `ids` at its last token (edit: a forward hook to attach)."""
    handle = None if edit is None else get_module(model, edit[0]).register_forward_hook(edit[1])
    try:
        with torch.no_grad():
            return model(**tok(prefix, return_tensors="pt")).logits[0, -1, ids].numpy()
    finally:
        if handle is not None:
            handle.remove()


def test_part2_predicts_each_slot_from_the_text_before_it(gpt2, mini):
    """part2 (before: "has no mask token") reads slot j where the text before it ends, and that equals the model
    run on the text cut at the slot; the clean text gives the same prediction there; the summary says once that
    the right context is dropped."""
    model, tok = gpt2
    assert is_causal(model) and tok.mask_token is None
    p2 = part2(model, tok, mini)
    ids = word_ids(tok, list(p2.words))
    assert p2.causal and p2.slot_words == ["her", "him"] and p2.logits.shape == (3, 2, 2)
    for j in range(2):
        prefix = p2.texts[1 + j].split("[MASK]")[0].rstrip()
        assert p2.positions[j] == len(tok(prefix)["input_ids"]) - 1
        want = _next_logits(model, tok, prefix, ids)
        np.testing.assert_allclose(p2.logits[1 + j, j], want, atol=1e-5)
        np.testing.assert_allclose(p2.logits[0, j], want, atol=1e-5)       # the clean text: the same prefix
    assert np.isfinite(p2.logits).all()
    s = p2.summary()
    assert s.count(NOTE) == 1 and f"tiny-gpt2 {NOTE}" in s and s.count("Part 2 |") == 2
    assert "causal" not in part2(*build("bert"), mini).summary()           # a masked LM: no such line


def test_part3_lesions_a_causal_lm_where_it_predicts_the_slot(gpt2, mini):
    """part3 zeroes each slot's word's neurons at the last token before that slot, in the text where it is masked:
    the same logits as the cut text run with a plain hook zeroing them at its last token; the clean text is not
    touched; mean ablation runs; no hook is left."""
    model, tok = gpt2
    p1 = part1(model, tok, mini, layer=1)
    p2 = part2(model, tok, mini)
    assert all(p1.neurons(w).any() for w in p2.words), p1.summary()
    p3 = part3(model, tok, p1, p2)
    ids = word_ids(tok, list(p2.words))
    for j, w in enumerate(p2.slot_words):
        prefix = p2.texts[1 + j].split("[MASK]")[0].rstrip()
        idx = torch.as_tensor(np.flatnonzero(p1.neurons(w)))

        def zero_last(module, args, out):
            out = out.clone()
            out[:, -1, idx] = 0
            return out
        want = _next_logits(model, tok, prefix, ids, (mlp_module_name(model, 1, "pre"), zero_last))
        np.testing.assert_allclose(p3.logits[1 + j, j], want, atol=1e-5)
    assert np.array_equal(p3.delta[0], np.zeros((2, 2)))
    assert np.abs(p3.delta[1, 0]).max() > 0 and np.abs(p3.delta[2, 1]).max() > 0
    assert "Part 3 | tiny-gpt2, layer 1: her slot" in p3.summary()
    assert np.isfinite(part3(model, tok, p1, p2, mode="mean").logits).all()
    assert hooks_attached(model) == []


def test_prediction_positions_are_the_mask_or_the_token_before_it(gpt2, tokenizer, tiny_model):
    model, tok = gpt2
    texts = ["Nobody told [MASK] about the plans.", "Can you call [MASK] later?"]
    assert prediction_positions(tiny_model, tokenizer, texts) == mask_positions(tokenizer, texts)
    want = [[len(tok(t.split("[MASK]")[0].rstrip())["input_ids"]) - 1] for t in texts]
    assert prediction_positions(model, tok, texts) == want
    assert next_token_position(tok, "Can you call her later?", len("Can you call "), 0) == want[1][0]
    with pytest.raises(StimulusError, match=r"text 0 .*exactly one \[MASK\] \(found 2\)"):
        prediction_positions(model, tok, ["[MASK] told [MASK]."])
    with pytest.raises(StimulusError, match=r"text 1 .*there are none"):
        prediction_positions(model, tok, ["Call [MASK].", "[MASK] left."])


def test_the_cli_runs_a_saved_gpt2_end_to_end(gpt2, mini, tmp_path, capsys):
    """python -m helpers --model <a tiny GPT-2 saved with save_pretrained>: loads it as a causal LM, prints the
    three parts (the causal note once) and writes the four figures."""
    from helpers.cli import main
    model, tok = gpt2
    folder = tmp_path / "tiny-gpt2"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    main(["--model", str(folder), "--contrast", mini, "--figures", str(tmp_path / "figs")])
    out = capsys.readouterr().out
    assert out.count(NOTE) == 1
    for part in ("Part 1 |", "Part 3 |"):
        assert out.count(part) == 1, out
    assert "[MASK]=her:" in out and "[MASK]=him:" in out
    assert len(list((tmp_path / "figs").glob("*.png"))) == 4


def test_the_report_runs_a_causal_lm(gpt2, mini):
    from helpers.report import build_report
    model, tok = gpt2
    rep = build_report(model, tok, mini, layer=1, controls=False, log=None)
    assert any(NOTE in s.summary for s in rep.sections) and len(rep.figures) == 4
