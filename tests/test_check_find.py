"""helpers.check for notebooks 01 and 02: (a) target_position, (b) capture_mlp, (c) paired_test,
(d) mask_logit_diff. The reference solutions (as in the notebooks) pass; each usual mistake, filled in on
purpose, makes the check raise Mistake with a sentence that names it; an error in the student's code is shown
at the student's line, a stub as NotDone with its hint. (b) and (d) run on the stand-in."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy import stats
from statsmodels.stats.multitest import fdrcorrection

import helpers
from helpers import check
from helpers.arch import mlp_module_name
from helpers.check import Mistake, NotDone, StudentError
from helpers.hooks import get_module, hooks_attached


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The checks run one short sentence at a time: one torch thread is as fast, and does not stall (OpenMP
    spin-waits) when other jobs share the two cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def names_the_mistake(run, exercise, phrase):
    """run() makes the check refuse the student's function: a Mistake for `exercise` whose message names
    `phrase` (not a generic "does not match")."""
    with pytest.raises(Mistake, match=re.escape(phrase)) as e:
        run()
    assert str(e.value).startswith(f"✗ {exercise}: ")


# --- (a) target_position ------------------------------------------------------------------------
def _pieces(tokenizer, sentence, word, special=True):
    """Token indices whose characters fall inside the whole word `word`."""
    m = re.search(rf"\b{re.escape(word)}\b", sentence, flags=re.IGNORECASE)
    enc = tokenizer(sentence, return_offsets_mapping=True, add_special_tokens=special)
    return [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < m.end() and e > m.start()]


def target_position(tokenizer, sentence, word):
    return _pieces(tokenizer, sentence, word)[-1]


def forgot_cls(tokenizer, sentence, word):
    return _pieces(tokenizer, sentence, word, special=False)[-1]


def first_piece(tokenizer, sentence, word):
    return _pieces(tokenizer, sentence, word)[0]


def letters_not_word(tokenizer, sentence, word):
    start = sentence.lower().index(word.lower())            # finds 'her' inside 'mother'
    enc = tokenizer(sentence, return_offsets_mapping=True)
    return [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < start + len(word) and e > start][-1]


def test_target_position_reference_passes(tokenizer, capsys):
    check.target_position(target_position, tokenizer)
    assert capsys.readouterr().out.startswith("✓ (a) target_position: right on 6 sentences")


@pytest.mark.parametrize("fn,phrase", [(forgot_cls, "you forgot [CLS]"), (first_piece, "its FIRST piece"),
                                       (letters_not_word, "inside 'mother'")])
def test_target_position_names_the_mistake(tokenizer, fn, phrase):
    names_the_mistake(lambda: check.target_position(fn, tokenizer), "(a) target_position", phrase)


def words_not_tokens(tokenizer, sentence, word):
    return [w.strip(".,'").lower() for w in sentence.split()].index(word.lower())


def characters(tokenizer, sentence, word):
    return re.search(rf"\b{re.escape(word)}\b", sentence, flags=re.IGNORECASE).start()


@pytest.mark.parametrize("fn,phrase", [
    (lambda tok, s, w: target_position(tok, s, w) + 1, "one too large for every sentence"),
    (lambda tok, s, w: first_piece(tok, s, w) - 1, "its first piece, and every index is one too small"),
    (words_not_tokens, "you counted words"), (characters, "a character offset"),
    (lambda tok, s, w: 2, "The model's tokens, with their indices: 0:[CLS]")])
def test_target_position_names_more_mistakes(tokenizer, fn, phrase):
    names_the_mistake(lambda: check.target_position(fn, tokenizer), "(a) target_position", phrase)


def test_target_position_wants_one_int(tokenizer):
    with pytest.raises(Mistake, match="return one int"):
        check.target_position(lambda tok, s, w: _pieces(tok, s, w), tokenizer)
    with pytest.raises(Mistake, match="returned None"):
        check.target_position(lambda tok, s, w: None, tokenizer)
    check.target_position(lambda tok, s, w: torch.tensor(target_position(tok, s, w)), tokenizer)  # a 0-d tensor is fine


# --- (b) capture_mlp ----------------------------------------------------------------------------
def _capture(model, tokenizer, sentences, word, layer, site="pre", shift=0, remove=True, safe=True):
    """The reference capture, with switches for the usual mistakes."""
    module = get_module(model, mlp_module_name(model, layer, site))
    rows = []
    handle = module.register_forward_hook(lambda mod, inputs, output: rows.append(output[0].detach()))

    def forward():
        with torch.no_grad():
            for s in sentences:
                model(**tokenizer(s, return_tensors="pt"))
    if safe:
        try:
            forward()
        finally:
            handle.remove()
    else:
        forward()                                            # a failure here skips the removal
        if remove:
            handle.remove()
    pos = helpers.target_positions(tokenizer, sentences, word)
    return np.stack([r[p + shift].numpy() for r, p in zip(rows, pos)])


def capture_mlp(model, tokenizer, sentences, word, layer):
    return _capture(model, tokenizer, sentences, word, layer)


CAPTURE_MISTAKES = {
    "post-GELU": (lambda m, t, s, w, L: _capture(m, t, s, w, L, site="post"), "AFTER GELU"),
    "one token early": (lambda m, t, s, w, L: _capture(m, t, s, w, L, shift=-1), "one too early: you forgot [CLS]"),
    "hook left attached": (lambda m, t, s, w, L: _capture(m, t, s, w, L, safe=False, remove=False),
                           "still attached after your function returned"),
    "no finally": (lambda m, t, s, w, L: _capture(m, t, s, w, L, safe=False),
                   "when the forward pass fails your hook stays attached"),
    "wrong layer": (lambda m, t, s, w, L: _capture(m, t, s, w, L - 1), "not layer"),
}


def _rows(model, tokenizer, sentences, layer, name=None, inputs=False):
    """Every token's values at module `name` (default: layer's intermediate.dense), per sentence."""
    module = get_module(model, name or mlp_module_name(model, layer))
    rows = []
    handle = module.register_forward_hook(lambda mod, i, o: rows.append((i[0] if inputs else o)[0].detach()))
    try:
        with torch.no_grad():
            for s in sentences:
                model(**tokenizer(s, return_tensors="pt"))
    finally:
        handle.remove()
    return rows


def _at(rows, tokenizer, sentences, word, shift=0):
    pos = helpers.target_positions(tokenizer, sentences, word)
    return np.stack([r[p + shift].numpy() for r, p in zip(rows, pos)])


MORE_CAPTURE_MISTAKES = {
    "one token late": (lambda m, t, s, w, L: _capture(m, t, s, w, L, shift=1), "one too late"),
    "next layer": (lambda m, t, s, w, L: _capture(m, t, s, w, L + 1), "not layer"),
    "[CLS]": (lambda m, t, s, w, L: np.stack([r[0].numpy() for r in _rows(m, t, s, L)]), "you read the [CLS] token"),
    "[SEP]": (lambda m, t, s, w, L: np.stack([r[-1].numpy() for r in _rows(m, t, s, L)]), "the last token ([SEP])"),
    "mean": (lambda m, t, s, w, L: np.stack([r.mean(0).numpy() for r in _rows(m, t, s, L)]), "you averaged"),
    "transposed": (lambda m, t, s, w, L: _capture(m, t, s, w, L).T, "transposed"),
    "hook input": (lambda m, t, s, w, L: _at(_rows(m, t, s, L, inputs=True), t, s, w), "width of the residual stream"),
    "every token": (lambda m, t, s, w, L: torch.stack([r[:5] for r in _rows(m, t, s, L)]), "still holds every token"),
    "no return": (lambda m, t, s, w, L: None, "returned None"),
}


def test_capture_mlp_reference_passes(standin, capsys):
    model, tok = standin
    check.capture_mlp(capture_mlp, model, tok)
    assert capsys.readouterr().out.startswith("✓ (b) capture_mlp: pre-GELU values at the target token")
    assert hooks_attached(model) == []


@pytest.mark.parametrize("name", [*CAPTURE_MISTAKES, *MORE_CAPTURE_MISTAKES])
def test_capture_mlp_names_the_mistake(standin, name):
    model, tok = standin
    fn, phrase = {**CAPTURE_MISTAKES, **MORE_CAPTURE_MISTAKES}[name]
    names_the_mistake(lambda: check.capture_mlp(fn, model, tok), "(b) capture_mlp", phrase)
    assert hooks_attached(model) == []                      # the check took a leaked hook off
    assert hooks_attached(model) == []


def test_capture_mlp_refuses_to_run_over_a_hook_left_before(standin):
    model, tok = standin
    handle = get_module(model, mlp_module_name(model, 1)).register_forward_hook(lambda *a: None)
    try:
        with pytest.raises(Mistake, match=re.escape("helpers.check.remove_hooks(model)")):
            check.capture_mlp(capture_mlp, model, tok)
    finally:
        handle.remove()


def test_capture_mlp_error_in_student_code_leaves_no_hook(standin):
    model, tok = standin

    def crashes_after_hooking(model, tokenizer, sentences, word, layer):
        get_module(model, mlp_module_name(model, layer)).register_forward_hook(lambda *a: None)
        return sentences[99]                                  # IndexError, with the hook still on
    with pytest.raises(StudentError, match="IndexError"):
        check.capture_mlp(crashes_after_hooking, model, tok)
    assert hooks_attached(model) == []


# --- (c) paired_test ----------------------------------------------------------------------------
def paired_test(acts_a, acts_b, q=0.05):
    res = stats.ttest_rel(acts_a, acts_b, axis=0)
    return res.statistic, fdrcorrection(res.pvalue, alpha=q)[0]


def sign_flipped(acts_a, acts_b, q=0.05):
    return paired_test(acts_b, acts_a, q)


def uncorrected(acts_a, acts_b, q=0.05):
    res = stats.ttest_rel(acts_a, acts_b, axis=0)
    return res.statistic, res.pvalue < q


def ignores_q(acts_a, acts_b, q=0.05):
    return paired_test(acts_a, acts_b)


def _t_and(mask_of):
    """A paired_test whose t is right and whose mask is mask_of(t, p, q)."""
    def fn(acts_a, acts_b, q=0.05):
        res = stats.ttest_rel(acts_a, acts_b, axis=0)
        return res.statistic, mask_of(res.statistic, res.pvalue, q)
    return fn


def _mask_and(t_of):
    """A paired_test whose mask is right and whose t is t_of(a, b)."""
    def fn(acts_a, acts_b, q=0.05):
        return t_of(acts_a, acts_b), paired_test(acts_a, acts_b, q)[1]
    return fn


MORE_TTEST_MISTAKES = {
    "unpaired": (_mask_and(lambda a, b: stats.ttest_ind(a, b, axis=0).statistic), "independent-samples"),
    "p for t": (_mask_and(lambda a, b: stats.ttest_rel(a, b, axis=0).pvalue), "your first result holds the p-values"),
    "ddof=0": (_mask_and(lambda a, b: (a - b).mean(0) / ((a - b).std(0) / np.sqrt(len(a)))), "ddof=0"),
    "wrong axis": (_mask_and(lambda a, b: stats.ttest_rel(a, b, axis=1).statistic), "one per SENTENCE PAIR"),
    "BY": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q, method="negcorr")[0]), "Benjamini-Yekutieli"),
    "Bonferroni": (_t_and(lambda t, p, q: p < q / p.size), "that is Bonferroni"),
    "adjusted p": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q)[1]), "the BH-adjusted p-values"),
    "p as mask": (_t_and(lambda t, p, q: p), "holds the p-values; it must be a True/False mask"),
    "0/1": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q)[0].astype(int)), "holds 0s and 1s"),
    "inverted": (_t_and(lambda t, p, q: ~fdrcorrection(p, alpha=q)[0]), "it is inverted"),
    "t > 0 only": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q)[0] & (t > 0)), "only the neurons with t > 0"),
    "t < 0 only": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q)[0] & (t < 0)), "only the neurons with t < 0"),
    "wrong mask shape": (_t_and(lambda t, p, q: fdrcorrection(p, alpha=q)[0][:10]), "one True/False per neuron"),
    "one result": (lambda a, b, q=0.05: paired_test(a, b, q)[0], "return two things"),
    "no return": (lambda a, b, q=0.05: None, "returned None"),
    "lecture's line": (_t_and(lambda t, p, q: p < fdrcorrection(p)[0]), "you ignored q"),
}


def test_paired_test_reference_passes(capsys):
    check.paired_test(paired_test)
    assert capsys.readouterr().out.startswith("✓ (c) paired_test: paired t (a - b) and the BH mask")


@pytest.mark.parametrize("fn,phrase", [(sign_flipped, "opposite sign"), (uncorrected, "p < q, with no correction"),
                                       (ignores_q, "you ignored q")])
def test_paired_test_names_the_mistake(fn, phrase):
    names_the_mistake(lambda: check.paired_test(fn), "(c) paired_test", phrase)


@pytest.mark.parametrize("name", list(MORE_TTEST_MISTAKES))
def test_paired_test_names_more_mistakes(name):
    fn, phrase = MORE_TTEST_MISTAKES[name]
    names_the_mistake(lambda: check.paired_test(fn), "(c) paired_test", phrase)


# --- (d) mask_logit_diff ------------------------------------------------------------------------
def _logits(model, tokenizer, text, shift=0):
    enc = tokenizer(text, return_tensors="pt")
    pos = enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        return model(**enc).logits[0, pos + shift]


def mask_logit_diff(model, tokenizer, text, expected, other):
    logits = _logits(model, tokenizer, text)
    e, o = tokenizer.convert_tokens_to_ids([expected, other])
    return float(logits[e] - logits[o])


def _diff_of(x, tokenizer, expected, other):
    e, o = tokenizer.convert_tokens_to_ids([expected, other])
    return float(x[e] - x[o])


PREDICT_MISTAKES = {
    "sign flipped": (lambda m, t, x, e, o: -mask_logit_diff(m, t, x, e, o), "your sign is flipped"),
    "one token early": (lambda m, t, x, e, o: _diff_of(_logits(m, t, x, shift=-1), t, e, o),
                        "one token too early: you forgot [CLS]"),
    "probabilities": (lambda m, t, x, e, o: _diff_of(torch.softmax(_logits(m, t, x), -1), t, e, o),
                      "you compared probabilities"),
}


def _diff_of_ids(x, e_id, o_id):
    return float(x[e_id] - x[o_id])


def _row(model, tokenizer, text, where):
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits[0, where]


MORE_PREDICT_MISTAKES = {
    "one token late": (lambda m, t, x, e, o: _diff_of(_logits(m, t, x, shift=1), t, e, o), "one token too late"),
    "[CLS]": (lambda m, t, x, e, o: _diff_of(_row(m, t, x, 0), t, e, o), "at index 0 ([CLS])"),
    "[SEP]": (lambda m, t, x, e, o: _diff_of(_row(m, t, x, -1), t, e, o), "the last token ([SEP])"),
    "expected only": (lambda m, t, x, e, o: float(_logits(m, t, x)[t.convert_tokens_to_ids(e)]),
                      "logit(expected) alone"),
    "[CLS] ids": (lambda m, t, x, e, o: _diff_of_ids(_logits(m, t, x), t(e)["input_ids"][0], t(o)["input_ids"][0]),
                  "both words became the same token"),
    "two numbers": (lambda m, t, x, e, o: _logits(m, t, x)[t.convert_tokens_to_ids([e, o])], "you returned 2 numbers"),
    "no return": (lambda m, t, x, e, o: None, "returned None"),
}


def test_mask_logit_diff_reference_passes(standin, capsys):
    model, tok = standin
    check.mask_logit_diff(mask_logit_diff, model, tok)
    assert capsys.readouterr().out.startswith("✓ (d) mask_logit_diff: logit(expected) - logit(other) right at 5")


@pytest.mark.parametrize("name", [*PREDICT_MISTAKES, *MORE_PREDICT_MISTAKES])
def test_mask_logit_diff_names_the_mistake(standin, name):
    model, tok = standin
    fn, phrase = {**PREDICT_MISTAKES, **MORE_PREDICT_MISTAKES}[name]
    names_the_mistake(lambda: check.mask_logit_diff(fn, model, tok), "(d) mask_logit_diff", phrase)


# --- how errors and stubs reach the student -----------------------------------------------------
def test_error_in_student_code_is_shown_at_the_students_line(tokenizer):
    def buggy(tokenizer, sentence, word):
        ids = tokenizer(sentence)["input_ids"]
        return ids.index(tokenizer.convert_tokens_to_ids(word)) + offset_for_cls  # noqa: F821  the bug
    with pytest.raises(StudentError) as e:
        check.target_position(buggy, tokenizer)
    shown = "\n".join(e.value._render_traceback_())
    assert "offset_for_cls" in shown and "NameError" in shown
    assert "helpers/check" not in shown and "helpers\\check" not in shown


def test_stub_is_not_done_with_its_hint(tokenizer):
    def stub(tokenizer, sentence, word):
        raise NotImplementedError("Hint: x")
    with pytest.raises(NotDone, match="Hint: x") as e:
        check.target_position(stub, tokenizer)
    assert "(a) target_position is not done yet" in "\n".join(e.value._render_traceback_())
