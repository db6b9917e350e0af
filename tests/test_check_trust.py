"""Checks a student can trust (issue #24): no wrong answer passes, no mistake is misnamed, nothing the student's
code changes survives the check, every outcome is one line. Each test plants one case a check used to get
wrong and reads the key of the outcome (Mistake.key), not only its wording."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from scipy import stats
from statsmodels.stats.multitest import fdrcorrection

import helpers
from helpers import check
from helpers.arch import mlp_module_name
from helpers.check import CheckFailed, Mistake, StudentError
from helpers.check import _guard
from helpers.check._report import confusable
from helpers.hooks import get_module, hook_snapshot, hooks_attached
from conftest import tiny_bert
from test_check_find import capture_mlp, mask_logit_diff, paired_test
from test_check_lesion import _ablation
from test_check_controls import heldout, permutation_p, random_sets

import importlib

position = importlib.import_module("helpers.check.position")
ttest = importlib.import_module("helpers.check.ttest")
null = importlib.import_module("helpers.check.null")
held = importlib.import_module("helpers.check.heldout")
lesion = importlib.import_module("helpers.check.lesion")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def key_of(run) -> str | None:
    with pytest.raises(Mistake) as e:
        run()
    return e.value.key


def state(model) -> dict:
    """Everything the guard promises to keep: weights, modes, hooks."""
    return {"weights": {k: v.clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()], "hooks": hook_snapshot(model)}


def same_state(model, before) -> bool:
    now = state(model)
    return (now["training"] == before["training"] and now["hooks"] == before["hooks"]
            and all(torch.equal(now["weights"][k], v) for k, v in before["weights"].items()))


# --- a wrong answer that used to pass -------------------------------------------------------------------

def zero_rows_ablation(model, tokenizer, text, layer, neurons, expected, other):
    """Ablation by changing the weights: every token, and the model left damaged."""
    dense = get_module(model, mlp_module_name(model, layer))
    with torch.no_grad():
        dense.weight[torch.as_tensor(neurons)] = 0
        dense.bias[torch.as_tensor(neurons)] = 0
    return mask_logit_diff(model, tokenizer, text, expected, other)


def bias_add_ablation(model, tokenizer, text, layer, neurons, expected, other):
    dense = get_module(model, mlp_module_name(model, layer))
    dense.bias.data.add_(1.0)                      # through .data: no version counter sees it
    return mask_logit_diff(model, tokenizer, text, expected, other)


@pytest.mark.parametrize("fn", [zero_rows_ablation, bias_add_ablation], ids=["zero-rows", "bias-add"])
def test_e_a_function_that_changes_the_weights_is_named_and_undone(standin, fn):
    model, tok = standin
    before = state(model)
    with pytest.raises(Mistake) as e:
        check.ablated_logit_diff(fn, model, tok)
    assert e.value.key == "changed-weights" and "intermediate.dense" in e.value.text
    assert same_state(model, before)


def test_b_a_capture_that_changes_the_weights_is_named_and_undone(standin):
    model, tok = standin
    before = state(model)

    def scaled(model, tokenizer, sentences, word, layer):
        get_module(model, mlp_module_name(model, layer)).weight.data.mul_(1.0001)
        return capture_mlp(model, tokenizer, sentences, word, layer)
    assert key_of(lambda: check.capture_mlp(scaled, model, tok)) == "changed-weights"
    assert same_state(model, before)


def _capture_via_bert(remove: str):
    """(b) through model.bert(...) (not the root module), the hook removed only when the pass succeeds."""
    def fn(model, tokenizer, sentences, word, layer):
        rows = []
        h = get_module(model, mlp_module_name(model, layer)).register_forward_hook(
            lambda m, i, o: rows.append(o[0].detach()))
        with torch.no_grad():
            for s in sentences:
                model.bert(**tokenizer(s, return_tensors="pt"))
        h.remove()
        pos = helpers.target_positions(tokenizer, sentences, word)
        return np.stack([r[p].numpy() for r, p in zip(rows, pos)])
    return fn


def test_b_the_failure_is_planted_on_a_path_model_bert_takes(standin):
    model, tok = standin
    assert key_of(lambda: check.capture_mlp(_capture_via_bert("after"), model, tok)) == "hook-left-on-failure"
    assert not hooks_attached(model)


def test_e_the_failure_is_planted_on_a_path_model_bert_takes(standin):
    model, tok = standin

    def via_bert(model, tokenizer, text, layer, neurons, expected, other):
        enc = tokenizer(text, return_tensors="pt")
        pos = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])

        def zero(m, i, o):
            o = o.clone()
            o[:, pos, torch.as_tensor(neurons)] = 0
            return o
        h = get_module(model, mlp_module_name(model, layer)).register_forward_hook(zero)
        with torch.no_grad():
            hidden = model.bert(**enc).last_hidden_state
        h.remove()
        logits = model.cls(hidden)[0, pos]
        e, o = tokenizer.convert_tokens_to_ids([expected, other])
        return float(logits[e] - logits[o])
    assert key_of(lambda: check.ablated_logit_diff(via_bert, model, tok)) == "hook-left-on-failure"


def bh_without_step_up(acts_a, acts_b, q=0.05):
    res = stats.ttest_rel(acts_a, acts_b, axis=0)
    p = res.pvalue
    order = np.argsort(p)
    ranks = np.empty_like(order)
    ranks[order] = np.arange(1, p.size + 1)
    return res.statistic, p <= q * ranks / p.size


def test_c_bh_without_the_step_up_is_named():
    assert key_of(lambda: check.paired_test(bh_without_step_up)) == "no-step-up"


@pytest.mark.parametrize("seed_of, key", [(lambda seed: 0, "ignores-seed"), (lambda seed: None, "unseeded")],
                         ids=["fixed-seed", "no-seed"])
def test_f_a_random_sets_that_ignores_the_seed_is_named(seed_of, key):
    def sets(width, size, n, seed=0):
        return random_sets(width, size, n, seed_of(seed))
    assert key_of(lambda: check.random_null(sets, permutation_p)) == key


def test_f_an_unseeded_generator_is_never_called_uneven():
    """200 runs of the unseeded mistake: always 'unseeded', never the evenness alarm (which used to fire ~1 in 40)."""
    def sets(width, size, n, seed=0):
        return random_sets(width, size, n, None)
    keys = {key_of(lambda: check.random_null(sets, permutation_p)) for _ in range(200)}
    assert keys == {"unseeded"}


def test_f_the_evenness_alarm_has_a_false_alarm_rate_below_1e_6():
    """Exact: each neuron's count in n fair sets is Binomial(n, size / width); the alarm's bounds leave less
    than FALSE_ALARM per call outside (union bound over neurons), and the check makes len(SETS) + 1 calls."""
    total = 0.0
    for width, size, n, _ in null.SETS + null.SETS[:1]:
        lo, hi = null.even_bounds(width, size, n)
        tail = stats.binom.cdf(lo - 1, n, size / width) + stats.binom.sf(hi, n, size / width)
        total += width * tail + null.FALSE_ALARM         # + the neighbours test's bound (Hoeffding)
    assert total < 1e-6
    # and it still has power: a generator that never picks the last neuron, and one that prefers the first half
    never_last = lambda w, s, n, seed=0: _skewed(w, s, n, seed, never_last=True)  # noqa: E731
    assert key_of(lambda: check.random_null(never_last, permutation_p)) == "never-drawn"
    assert key_of(lambda: check.random_null(lambda w, s, n, seed=0: _skewed(w, s, n, seed), permutation_p)) == "uneven"

    def block(width, size, n, seed=0):
        rng = np.random.default_rng(seed)
        out = np.zeros((n, width), bool)
        for row in out:
            row[(rng.integers(width) + np.arange(size)) % width] = True
        return out
    assert key_of(lambda: check.random_null(block, permutation_p)) == "not-random"


def _skewed(width, size, n, seed, never_last=False):
    rng = np.random.default_rng(seed)
    out = np.zeros((n, width), bool)
    weights = np.ones(width)
    if never_last:
        weights[-1] = 0
    else:
        weights[: width // 2] = 2.0
    for row in out:
        row[rng.choice(width, size=size, replace=False, p=weights / weights.sum())] = True
    return out


def test_h_swapped_expected_words_are_named(standin):
    model, tok = standin
    fn = _h_solution()
    text = fn()
    swapped = re.sub(r"\t(this|these)\n", lambda m: "\t" + ("these" if m.group(1) == "this" else "this") + "\n", text)
    assert swapped != text
    assert key_of(lambda: check.own_contrast(swapped, model, tok)) == "tests-swapped"
    one_way = "\n".join(line for line in text.splitlines() if not line.endswith("\tthis")) + "\n"
    assert key_of(lambda: check.own_contrast(one_way, model, tok)) == "one-direction"


def _h_solution():
    from test_check_lesion import solution
    return solution("06_contrasts.ipynb", "(h)")["my_own_contrast"]


def test_g_two_q_are_tried():
    def ignores_q(acts_a, acts_b, train, test, lesion_drop, q=0.05):
        return heldout(acts_a, acts_b, train, test, lesion_drop, 0.05)
    assert key_of(lambda: check.heldout(ignores_q)) == "ignored-q"


def test_e_a_no_op_does_not_pass_on_a_weak_model(tokenizer, capsys):
    """On a random BERT with the usual small init, zeroing neurons moves the logits by less than the check
    can see: neither the right answer nor a hook that changes nothing gets a tick."""
    weak = tiny_bert(layers=4)
    check.ablated_logit_diff(_ablation(), weak, tokenizer)
    assert capsys.readouterr().out.startswith("? (e) ablated_logit_diff: ")
    try:
        check.ablated_logit_diff(_ablation(ablate=False), weak, tokenizer)
    except Mistake:
        pass
    assert not capsys.readouterr().out.startswith("✓")


def test_b_rows_in_another_order_are_named(standin):
    model, tok = standin

    def sorted_by_length(model, tokenizer, sentences, word, layer):
        order = sorted(range(len(sentences)), key=lambda i: len(tokenizer(sentences[i])["input_ids"]))
        return capture_mlp(model, tokenizer, [sentences[i] for i in order], word, layer)
    assert key_of(lambda: check.capture_mlp(sorted_by_length, model, tok)) == "rows-reordered"


# --- a wrong diagnosis ------------------------------------------------------------------------------------

def test_every_designed_input_tells_each_mistake_apart():
    """Power: on the check's own data the right answer differs from every named mistake, and no two named
    mistakes give the same answer (so exactly one can match), at every q."""
    a, b = ttest.data()
    r = stats.ttest_rel(a, b, axis=0)
    assert not confusable(r.statistic, ttest.t_variants(a, b), 1e-9)
    for q in ttest.QS:
        assert not confusable(fdrcorrection(r.pvalue, alpha=q)[0], ttest.mask_variants(r.statistic, r.pvalue, q), 0)
    a, b = held.data()
    tr, te = held.split()
    for q in held.QS:
        assert not confusable(held.select(a, b, tr, q), held.variants(a, b, tr, te, q), 0)
    assert not confusable(null.reference_p(), null._p_variants(), 1e-9)


def test_a_selection_that_is_no_named_mistake_gets_a_differs_line():
    """Not FDR at all (the 20 smallest p): no correction is named, the line says where it differs."""
    def top20(acts_a, acts_b, q=0.05):
        res = stats.ttest_rel(acts_a, acts_b, axis=0)
        mask = np.zeros(res.pvalue.size, bool)
        mask[np.argsort(res.pvalue)[:20]] = True
        return res.statistic, mask
    with pytest.raises(Mistake) as e:
        check.paired_test(top20)
    assert e.value.key is None and "first difference: neuron" in e.value.text


def test_b_a_capture_through_hidden_states_is_not_a_leaked_hook(standin):
    """transformers installs its own inert hooks the first time output_hidden_states=True runs: they are not
    the student's, the check leaves them, and hidden_states still works afterwards."""
    model, tok = standin

    def via_hidden_states(model, tokenizer, sentences, word, layer):
        pos = helpers.target_positions(tokenizer, sentences, word)
        with torch.no_grad():
            return np.stack([model(**tokenizer(s, return_tensors="pt"), output_hidden_states=True)
                             .hidden_states[layer + 1][0, p].numpy() for s, p in zip(sentences, pos)])
    assert key_of(lambda: check.capture_mlp(via_hidden_states, model, tok)) == "residual-stream"
    check.capture_mlp(capture_mlp, model, tok)                                  # and the right answer passes
    enc = tok("He saw [MASK].", return_tensors="pt")
    with torch.no_grad():
        assert len(model(**enc, output_hidden_states=True).hidden_states) == model.config.num_hidden_layers + 1


# --- one line, never a traceback ----------------------------------------------------------------------

def test_results_that_require_grad_are_read(standin):
    model, tok = standin

    def rows_with_grad(model, tokenizer, sentences, word, layer):
        return [torch.tensor(r, requires_grad=True) for r in capture_mlp(model, tokenizer, sentences, word, layer)]
    check.capture_mlp(rows_with_grad, model, tok)                   # a list of tensors: fine

    def diff_with_grad(model, tokenizer, text, expected, other):
        return torch.tensor(mask_logit_diff(model, tokenizer, text, expected, other), requires_grad=True)
    check.mask_logit_diff(diff_with_grad, model, tok)


def test_f_a_tuple_from_permutation_p_is_one_line():
    assert key_of(lambda: check.random_null(random_sets, lambda o, null: (1, 2))) == "not-one-number"


def test_b_on_a_one_layer_model(tokenizer, capsys):
    one = tiny_bert(layers=1)
    check.capture_mlp(capture_mlp, one, tokenizer)
    assert "layer 0" in capsys.readouterr().out


def test_a_bug_in_a_check_is_one_line(standin, monkeypatch):
    model, tok = standin
    monkeypatch.setattr(lesion, "_plan", lambda *a: 1 / 0)
    with pytest.raises(CheckFailed) as e:
        check.ablated_logit_diff(_ablation(), model, tok)
    lines = e.value._render_traceback_()
    assert len(lines) == 1 and "ZeroDivisionError" in lines[0] and "the check itself failed" in lines[0]


# --- right answers that used to be rejected -----------------------------------------------------------

def test_float32_results_pass():
    check.random_null(random_sets, lambda o, nl: np.float32(permutation_p(o, nl)))
    check.random_null(random_sets, lambda o, nl: torch.tensor(permutation_p(o, nl), dtype=torch.float32))
    check.heldout(lambda *a, **k: np.float32(heldout(*a, **k)))
    check.paired_test(lambda a, b, q=0.05: (paired_test(a, b, q)[0].astype(np.float32), paired_test(a, b, q)[1]))


def test_d_messages_show_rounded_numbers(standin):
    model, tok = standin

    def a_bit_off(model, tokenizer, text, expected, other):
        return np.float32(mask_logit_diff(model, tokenizer, text, expected, other) + 0.31)
    with pytest.raises(Mistake) as e:
        check.mask_logit_diff(a_bit_off, model, tok)
    assert e.value.key is None and not re.search(r"\d\.\d{6,}", e.value.text)


# --- what the student's code changed is named and put back -----------------------------------------

def _with(side_effect):
    def fn(model, tokenizer, text, expected, other):
        value = mask_logit_diff(model, tokenizer, text, expected, other)
        side_effect(model, tokenizer)
        return value
    return fn


@pytest.mark.parametrize("effect, key", [
    (lambda m, t: m.train(), "train-mode"),
    (lambda m, t: torch.set_grad_enabled(False), "grad-mode"),
    (lambda m, t: setattr(t, "padding_side", "left"), "changed-tokenizer"),
    (lambda m, t: setattr(m.config, "output_hidden_states", True), "changed-config"),
    (lambda m, t: setattr(m.bert.encoder.layer[0], "output", torch.nn.Identity()), "replaced-module"),
    (lambda m, t: setattr(m.bert.encoder.layer[1], "forward", lambda *a, **k: None), "replaced-forward"),
    (lambda m, t: m.bert.encoder.layer[2].register_forward_hook(lambda *a: None), "hook-left"),
    (lambda m, t: torch.nn.modules.module.register_module_forward_hook(lambda *a: None), "hook-left"),
    (lambda m, t: [x._forward_hooks.clear() for x in m.modules()], "removed-hooks"),
], ids=["train", "grad", "tokenizer", "config", "module", "forward", "hook", "global-hook", "cleared-hooks"])
def test_a_side_effect_is_named_and_undone(standin, effect, key):
    model, tok = standin
    with torch.no_grad():                  # transformers' own hooks are on, so clearing them is seen
        model(**tok("hi", return_tensors="pt"), output_hidden_states=True)
    before, side, grad = state(model), tok.padding_side, torch.is_grad_enabled()
    hidden = model.config.output_hidden_states
    assert key_of(lambda: check.mask_logit_diff(_with(effect), model, tok)) == key
    assert same_state(model, before) and tok.padding_side == side and torch.is_grad_enabled() == grad
    assert model.config.output_hidden_states == hidden and "forward" not in vars(model.bert.encoder.layer[1])
    assert not hooks_attached(model)
    check.mask_logit_diff(mask_logit_diff, model, tok)          # and the model works as before


def test_a_model_left_in_train_mode_is_said_before_the_check(standin):
    model, tok = standin
    model.train()
    try:
        assert key_of(lambda: check.mask_logit_diff(mask_logit_diff, model, tok)) == "train-mode-before"
    finally:
        model.eval()


def test_library_hooks_are_left_alone_by_remove_hooks(standin):
    model, tok = standin
    with torch.no_grad():
        model(**tok("hi", return_tensors="pt"), output_hidden_states=True)
    library = hook_snapshot(model)
    get_module(model, mlp_module_name(model, 1)).register_forward_hook(lambda *a: None)
    assert check.remove_hooks(model) == [(mlp_module_name(model, 1), "forward_hooks")]
    assert hook_snapshot(model) == library


# --- the record helpers.grade reads ---------------------------------------------------------------

def test_every_outcome_is_recorded(standin, tmp_path, monkeypatch):
    model, tok = standin
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("KIT_CHECK_LOG", str(log))
    check.paired_test(paired_test)
    with pytest.raises(Mistake):
        check.paired_test(bh_without_step_up)
    with pytest.raises(StudentError):
        check.paired_test(lambda a, b, q=0.05: 1 / 0)
    with pytest.raises(check.NotDone):
        check.paired_test(lambda a, b, q=0.05: (_ for _ in ()).throw(NotImplementedError("Hint: x")))
    weak = tiny_bert(layers=4)
    check.ablated_logit_diff(_ablation(), weak, tok)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["exercise"], r["status"], r["key"]) for r in rows] == [
        ("(c)", "passed", None), ("(c)", "mistake", "no-step-up"), ("(c)", "error", None), ("(c)", "not_done", None),
        ("(e)", "cannot_tell", None)]
    assert all(r["name"] in ("paired_test", "ablated_logit_diff") and r["text"] for r in rows)


def test_the_trace_and_memo_are_off_for_students():
    assert _guard.TRACE is None and _guard.MEMO is None
