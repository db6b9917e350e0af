"""The checkers of notebooks 03 and 06 (helpers.check.lesion, helpers.check.contrasts): the notebooks' own
solutions pass, and each mistake a checker names is planted here and read back from its message."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from helpers import check
from helpers.arch import mlp_module_name
from helpers.check import Mistake, NotDone
from helpers.check.lesion import check_layer_for
from helpers.hooks import get_module, hooks_attached

ROOT = Path(__file__).resolve().parents[1]


def solution(notebook: str, tag: str) -> dict:
    """Run the exercise cell `tag` of a solution notebook; its namespace (the function it defines)."""
    cells = nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
    src = next(c.source for c in cells if c.cell_type == "code" and c.source.startswith(f"# exercise: {tag}"))
    ns = {"torch": torch, "np": np, "get_module": get_module, "mlp_module_name": mlp_module_name}
    exec(compile(src, f"{notebook}:{tag}", "exec"), ns)
    return ns


@pytest.fixture()
def model(standin):
    """The stand-in, checked clean of hooks before and after each test."""
    m, _ = standin
    assert not hooks_attached(m)
    yield m
    left = check.remove_hooks(m)
    assert not left, f"a test left hooks behind: {left}"


@pytest.fixture()
def tok(standin):
    return standin[1]


def mistake(fn, *args) -> str:
    with pytest.raises(Mistake) as err:
        fn(*args)
    return str(err.value)


# --- (e) ablated_logit_diff --------------------------------------------------------------------------------

def _ablation(where="mask", layer_shift=0, remove="finally", ablate=True):
    """A student's ablated_logit_diff with one planted mistake:
    where: "mask" (right), "all" (every token); layer_shift: hook layer + shift;
    remove: "finally" (right), "never" (hook left attached), "after" (removed only when the pass succeeds),
            "before" (removed before the forward pass: nothing ablated); ablate=False: the hook edits nothing."""
    def fn(model, tokenizer, text, layer, neurons, expected, other):
        enc = tokenizer(text, return_tensors="pt")
        pos = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
        idx = torch.as_tensor(neurons)

        def zero(module, inputs, output):
            output = output.clone()
            if ablate:
                output[:, pos if where == "mask" else slice(None), idx] = 0.0
            return output

        handle = get_module(model, mlp_module_name(model, layer + layer_shift)).register_forward_hook(zero)
        if remove == "before":
            handle.remove()
        if remove == "finally":
            try:
                with torch.no_grad():
                    logits = model(**enc).logits[0, pos]
            finally:
                handle.remove()
        else:
            with torch.no_grad():
                logits = model(**enc).logits[0, pos]
            if remove == "after":
                handle.remove()
        e, o = tokenizer.convert_tokens_to_ids([expected, other])
        return float(logits[e] - logits[o])
    return fn


def test_e_the_notebooks_solution_passes(model, tok, capsys):
    fn = solution("03_lesion_neurons.ipynb", "(e)")["ablated_logit_diff"]
    check.ablated_logit_diff(fn, model, tok)
    out = capsys.readouterr().out
    assert out.startswith("✓ (e) ablated_logit_diff") and "[MASK] only" in out


def test_e_passes_on_any_model(tiny_model, tok):
    """Another model, another layer count: the kit's answer is computed on it, no stored numbers."""
    check.ablated_logit_diff(_ablation(), tiny_model, tok)          # passes: no Mistake
    assert not hooks_attached(tiny_model)


def test_e_the_check_avoids_the_last_layer(standin, tiny_model):
    """At the last layer an edit at other tokens cannot reach the [MASK], so 'every token' would pass there."""
    for m in (standin[0], tiny_model):
        n = len(m.bert.encoder.layer)
        assert 0 <= check_layer_for(m) < n - 1


@pytest.mark.parametrize("wrong, says", [
    (dict(where="all"), "at EVERY token"),
    (dict(layer_shift=1), r"you ablated layer \d+, not layer \d+"),
    (dict(layer_shift=-1), r"you ablated layer \d+, not layer \d+"),
    (dict(remove="before"), "nothing was ablated"),
    (dict(ablate=False), "nothing was ablated"),
], ids=["every-token", "layer-above", "layer-below", "removed-too-early", "edits-nothing"])
def test_e_names_a_wrong_value(model, tok, wrong, says):
    assert re.search(says, mistake(check.ablated_logit_diff, _ablation(**wrong), model, tok))


def test_e_names_a_hook_left_attached_and_takes_it_off(model, tok):
    text = mistake(check.ablated_logit_diff, _ablation(remove="never"), model, tok)
    assert "still attached after your function returned" in text and "finally" in text
    assert not hooks_attached(model)


def test_e_names_a_hook_that_stays_when_the_forward_pass_fails(model, tok):
    text = mistake(check.ablated_logit_diff, _ablation(remove="after"), model, tok)
    assert "when the forward pass fails your hook stays attached" in text
    assert not hooks_attached(model)


def test_e_refuses_to_run_over_a_hook_left_from_before(model, tok):
    handle = model.register_forward_hook(lambda *a: None)
    try:
        assert "remove_hooks" in mistake(check.ablated_logit_diff, _ablation(), model, tok)
    finally:
        handle.remove()


def test_e_a_stub_shows_its_hint(model, tok):
    def stub(model, tokenizer, text, layer, neurons, expected, other):
        raise NotImplementedError("Hint: register a forward hook")
    with pytest.raises(NotDone, match="is not done yet. Hint: register a forward hook"):
        check.ablated_logit_diff(stub, model, tok)


# --- (h) own_contrast --------------------------------------------------------------------------------------

HEAD = "#: name = {a}/{b}\n#: a = {a}\n#: b = {b}\n"
PAIRS = ["We saw the {w} near the old bridge.", "She painted the {w} last summer.", "He found the {w} in the garden.",
         "They photographed the {w} at dawn.", "I described the {w} to my friend.", "You can draw the {w} from memory.",
         "The children fed the {w} every day.", "My aunt admired the {w} for hours.",
         "Our guide showed us the {w} today."]
TESTS = ["test\tThe [MASK] swam quietly across the lake.\t{a}", "test\tA [MASK] paddled past our boat.\t{b}"]


def contrast_text(a="canoe", b="penguin", n_pairs=9, tests=TESTS) -> str:
    pairs = [f"pair\t{s.format(w=a)}\t{s.format(w=b)}" for s in PAIRS[:n_pairs]]
    return HEAD.format(a=a, b=b) + "\n".join(pairs + [t.format(a=a, b=b) for t in tests]) + "\n"


def test_h_the_notebooks_solution_passes(model, tok, capsys):
    fn = solution("06_contrasts.ipynb", "(h)")["my_own_contrast"]
    check.own_contrast(fn, model, tok)
    assert capsys.readouterr().out.startswith("✓ (h) own_contrast: 'this/these'")


def test_h_takes_the_text_or_a_path(model, tok, tmp_path):
    check.own_contrast(contrast_text(), model, tok)                # passes: no Mistake
    path = tmp_path / "mine.tsv"
    path.write_text(contrast_text(), encoding="utf-8")
    check.own_contrast(str(path), model, tok)
    assert "no file" in mistake(check.own_contrast, str(tmp_path / "missing.tsv"), model, tok)


def test_h_a_file_that_does_not_load_is_named_at_its_line(model, tok):
    broken = contrast_text().replace("She painted the penguin", "She painted the canoe")   # pair line 5
    text = mistake(check.own_contrast, broken, model, tok)
    assert "does not load" in text and "my_contrast.tsv:5:" in text


def test_h_spaces_instead_of_tabs_are_pointed_out(model, tok):
    text = mistake(check.own_contrast, contrast_text().replace("\t", "    "), model, tok)
    assert "does not load" in text and "no tab at all" in text


@pytest.mark.parametrize("n_pairs, tests, says", [
    (5, TESTS, "5 pair line(s); write at least 8"),
    (9, TESTS[:1], "1 test line(s); write at least 2"),
], ids=["pairs", "tests"])
def test_h_too_few_lines(model, tok, n_pairs, tests, says):
    assert says in mistake(check.own_contrast, contrast_text(n_pairs=n_pairs, tests=tests), model, tok)


@pytest.mark.parametrize("a, b, says", [
    ("him", "her", "the kit's own 'him_her' set"),
    ("she", "he", "the kit's own 'he_she' set"),          # either order
    ("were", "was", "the notebook's example"),
])
def test_h_a_shipped_contrasts_words(model, tok, a, b, says):
    pairs = [f"pair\tThe {n} {a} here.\tThe {n} {b} here." for n in
             ("cat", "dog", "fox", "owl", "ant", "bee", "cow", "elk")]
    tests = f"test\tThe cat [MASK] here.\t{a}\ntest\tThe dog [MASK] here.\t{b}\n"
    text = HEAD.format(a=a, b=b) + "\n".join(pairs) + "\n" + tests
    assert says in mistake(check.own_contrast, text, model, tok)


def test_h_a_word_of_several_tokens(model, tok):
    assert tok.tokenize("kayak") == ["kay", "##ak"]
    text = mistake(check.own_contrast, contrast_text(a="canoe", b="kayak"), model, tok)
    assert "'kayak' is 2 tokens" in text and "rule 6" in text


def test_h_a_stub_shows_its_hint(model, tok):
    def stub():
        raise NotImplementedError("Hint: return a string laid out like MY_CONTRAST")
    with pytest.raises(NotDone, match="is not done yet. Hint: return a string"):
        check.own_contrast(stub, model, tok)
