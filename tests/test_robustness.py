"""Bad input gets one clear message naming the culprit; nothing leaks; outputs are reproducible.

One section per row of issue #7. Models are tiny random BERTs (conftest.tiny_bert), so
nothing is downloaded; the loader's rows (unknown model offline, checksum) are in
test_models.py and the property-based checks in test_properties.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.capture import mlp_activations
from helpers.hooks import StopForward, Trace, TraceDict, get_module, hooks_attached
from helpers.lecture import part1
from helpers.lesion import ablate_neurons, neuron_index
from helpers.readout import masked_logits
from helpers.arch import check_layer, mlp_module_name
from helpers.stats import paired_ttest_fdr
from helpers.stimuli import StimulusError, load_contrast, target_positions

ROOT = Path(__file__).resolve().parents[1]
HEADER = "#: name = test\n#: a = him\n#: b = her\n"
PAIR = "pair\tThe dog followed him home.\tThe dog followed her home.\n"


def write(tmp_path, text: str | bytes, name: str = "mine.tsv") -> Path:
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return f


# --- a sentence without the target word -------------------------------------------------------

def test_missing_target_names_the_sentence_and_the_word(tokenizer, tiny_model):
    sents = ["The dog followed him home.", "The dog followed them home."]
    with pytest.raises(StimulusError, match=r"sentence 1 'The dog followed them home\.' does not contain "
                                            r"the target word 'him'"):
        target_positions(tokenizer, sents, "him")
    with pytest.raises(StimulusError, match="does not contain the target word 'him'"):
        mlp_activations(tiny_model, tokenizer, sents, "him", 1)
    assert hooks_attached(tiny_model) == []


def test_whole_words_only(tokenizer):
    """'him' inside 'himself' or 'whim' is not the target word."""
    with pytest.raises(StimulusError, match="does not contain"):
        target_positions(tokenizer, ["He did it himself on a whim."], "him")


def test_missing_target_in_a_file_names_file_and_line(tmp_path):
    f = write(tmp_path, HEADER + PAIR + "pair\tThe dog followed him home.\tThe dog followed them home.\n")
    with pytest.raises(StimulusError, match=r"mine\.tsv:5: 'The dog followed them home\.' must contain 'her'"):
        load_contrast(f)


# --- a target word split into several wordpieces ----------------------------------------------

SPLIT = ["The letter from Ximena arrived today.", "We met Ximena at the station."]   # xi ##men ##a


def test_split_target_last_piece_by_default_first_on_request(tokenizer):
    last = target_positions(tokenizer, SPLIT, "Ximena")
    first = target_positions(tokenizer, SPLIT, "Ximena", wordpiece="first")
    for sent, lo, hi in zip(SPLIT, first, last):
        toks = tokenizer.convert_ids_to_tokens(tokenizer(sent)["input_ids"])
        assert toks[lo: hi + 1] == ["xi", "##men", "##a"]
    with pytest.raises(ValueError, match="'first' or 'last'"):
        target_positions(tokenizer, SPLIT, "Ximena", wordpiece="middle")


def test_split_target_policy_is_applied_and_said(tokenizer, tiny_model, capsys, tmp_path):
    layer, name = 1, mlp_module_name(tiny_model, 1, "pre")
    for policy in ("last", "first"):
        acts = mlp_activations(tiny_model, tokenizer, SPLIT, "Ximena", layer, wordpiece=policy)[layer]
        out = capsys.readouterr().out
        assert "'Ximena' (3 pieces)" in out and f"its {policy} piece (wordpiece={policy!r})" in out
        pos = target_positions(tokenizer, SPLIT, "Ximena", wordpiece=policy)
        for i, sent in enumerate(SPLIT):
            with Trace(tiny_model, name) as t, torch.no_grad():
                tiny_model(**tokenizer(sent, return_tensors="pt"))
            # batched (padded) vs one sentence alone: equal up to float summation order
            torch.testing.assert_close(torch.from_numpy(acts[i]), t.output[0, pos[i]], rtol=1e-5, atol=1e-6)
    mlp_activations(tiny_model, tokenizer, ["The dog followed him home."], "him", layer)
    assert capsys.readouterr().out == ""          # no split word, nothing said
    lines = ["#: a = Ximena", "#: b = Peter"] + [f"pair\t{s} Ximena left.\t{s} Peter left."
                                                  for s in ("Then", "Later", "Finally")]
    p1 = part1(tiny_model, tokenizer, write(tmp_path, "\n".join(lines) + "\n"), layer=layer, wordpiece="first")
    out = capsys.readouterr().out
    assert "'Ximena' (3 pieces)" in out and "wordpiece='first'" in out and p1.acts_a.shape[0] == 3


# --- a target word occurring twice -------------------------------------------------------------

def test_target_twice_names_the_sentence(tokenizer):
    with pytest.raises(StimulusError, match=r"sentence 0 'Him\? I told him\.' contains the target word 'him' 2 times"):
        target_positions(tokenizer, ["Him? I told him."], "him")


def test_target_twice_in_a_file_names_file_and_line(tmp_path):
    f = write(tmp_path, HEADER + "pair\tI told him to call him.\tI told her to call him.\n")
    with pytest.raises(StimulusError, match=r"mine\.tsv:4: 'I told him to call him\.' must contain 'him' "
                                            r"exactly once as a word, found 2"):
        load_contrast(f)


# --- unequal counts / misaligned pairs ---------------------------------------------------------

def test_unequal_pair_counts_say_which_rows(tiny_model):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"10 vs 8 pairs, so rows 8\.\.9 of a have no partner"):
        paired_ttest_fdr(rng.normal(size=(10, 5)), rng.normal(size=(8, 5)))
    with pytest.raises(ValueError, match=r"rows 3\.\.3 of b have no partner"):
        paired_ttest_fdr(rng.normal(size=(3, 5)), rng.normal(size=(4, 5)))
    with pytest.raises(ValueError, match="same neurons"):
        paired_ttest_fdr(rng.normal(size=(4, 5)), rng.normal(size=(4, 6)))


def test_pairs_with_nan_are_named():
    a, b = np.ones((5, 3)), np.zeros((5, 3))
    a[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"pairs \[3\] contain NaN"):
        paired_ttest_fdr(a, b)


def test_unequal_sentences_and_words(tokenizer):
    with pytest.raises(StimulusError, match="3 sentences but 2 target words"):
        target_positions(tokenizer, ["a him", "b him", "c her"], ["him", "him"])


@pytest.mark.parametrize("b_sentence, why", [
    ("Nobody told her about the change of plans.", r"differ in 8 words \('The'/'Nobody'"),   # from another pair
    ("Her dog followed home.", r"have 8 and 4 words"),
])
def test_misaligned_pair_in_a_file_names_the_line(tmp_path, b_sentence, why):
    f = write(tmp_path, HEADER + PAIR + f"pair\tThe dog followed him across the garden yesterday.\t{b_sentence}\n")
    with pytest.raises(StimulusError, match=rf"mine\.tsv:5: the two sentences of a pair must be the same word for "
                                            rf"word .*{why}"):
        load_contrast(f)


def test_shipped_agreement_pairs_still_line_up():
    """Agreement sets may change the words that agree (noun and verb): not a misalignment."""
    assert len(load_contrast("singular_plural").pairs) == 60


# --- layer out of range ------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [3, -1, 99])
def test_bad_layer_names_the_valid_range(tokenizer, tiny_model, layer):
    msg = rf"layer {layer} is out of range: tiny-bert has 3 layers, so layer must be 0\.\.2"
    with pytest.raises(ValueError, match=msg):
        mlp_module_name(tiny_model, layer)
    with pytest.raises(ValueError, match=msg):
        mlp_activations(tiny_model, tokenizer, ["I saw him."], "him", [0, layer])
    with pytest.raises(ValueError, match=msg):
        with ablate_neurons(tiny_model, layer, [0]):
            pass
    with pytest.raises(ValueError, match=msg):
        part1(tiny_model, tokenizer, "him_her", layer=layer)
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("layer", [1.0, "2", True, None])
def test_non_integer_layer(tiny_model, layer):
    with pytest.raises(TypeError, match=r"layer must be an integer 0\.\.2"):
        check_layer(tiny_model, layer)


def test_no_layers(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="layers is empty"):
        mlp_activations(tiny_model, tokenizer, ["I saw him."], "him", [])


# --- neuron indices ----------------------------------------------------------------------------

@pytest.mark.parametrize("neurons, err, msg", [
    ([0, 48], IndexError, r"neuron index 48 is out of range in layer 1: valid 0\.\.47"),
    ([-1], IndexError, r"neuron index -1 is out of range in layer 1: valid 0\.\.47"),
    ([1.5, 2.0], TypeError, r"integer indices or a boolean mask \[48\], got float64"),
    (np.ones(47, dtype=bool), ValueError, r"boolean neuron mask must have shape \(48,\)"),
])
def test_bad_neurons_are_named(tiny_model, neurons, err, msg):
    with pytest.raises(err, match=msg):
        with ablate_neurons(tiny_model, 1, neurons):
            pass
    assert hooks_attached(tiny_model) == []


@pytest.mark.parametrize("empty", [[], np.zeros(48, dtype=bool), np.array([], dtype=np.int64)])
def test_empty_neuron_set_is_a_noop_said_in_output(tokenizer, tiny_model, empty, capsys):
    texts = ["The dog followed [MASK] home."]
    before = masked_logits(tiny_model, tokenizer, texts, ["him", "her"])
    with ablate_neurons(tiny_model, 1, empty):
        assert hooks_attached(tiny_model) == []
        during = masked_logits(tiny_model, tokenizer, texts, ["him", "her"])
    assert np.array_equal(before, during)
    assert "neuron set for layer 1 is empty, so nothing is ablated" in capsys.readouterr().out


def test_neuron_index_dedups_and_sorts():
    assert neuron_index([5, 1, 5], 8).tolist() == [1, 5]


# --- zero-variance neurons ---------------------------------------------------------------------

def test_zero_variance_neurons_are_left_out_of_fdr_and_counted(monkeypatch):
    import helpers.stats as mt

    seen = []
    real = mt.fdrcorrection

    def checked(p, *a, **k):
        seen.append(np.asarray(p).copy())
        assert np.isfinite(p).all(), "NaN p-values reached fdrcorrection"
        return real(p, *a, **k)

    monkeypatch.setattr(mt, "fdrcorrection", checked)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 6))
    b = a - 1.0 + 0.1 * rng.normal(size=(20, 6))
    b[:, 2] = a[:, 2]            # no difference at all
    b[:, 4] = a[:, 4] - 3.0      # a constant difference: a mean but no variance
    a[:, 5] = b[:, 5] = 0.0      # a dead neuron
    res = paired_ttest_fdr(a, b)
    assert len(seen) == 1 and seen[0].shape == (3,)
    assert res.n_excluded == 3
    assert np.isnan(res.t[[2, 4, 5]]).all() and np.isnan(res.p_adj[[2, 4, 5]]).all()
    assert not res.significant[[2, 4, 5]].any() and res.significant[[0, 1, 3]].all()
    assert "3 neurons with zero variance left out of the correction" in res.summary("him", "her")


def test_all_neurons_zero_variance():
    a = np.zeros((5, 4))
    res = paired_ttest_fdr(a, a)
    assert res.n_excluded == 4 and not res.significant.any()
    assert res.summary().startswith("0 of 4 neurons pass FDR")


# --- empty or malformed stimulus files ---------------------------------------------------------

@pytest.mark.parametrize("body, where, msg", [
    ("pair\tThe dog followed him home.\tThe dog followed her home.\n", 1, "must come before the first pair"),
    (HEADER + "pair The dog followed him home. The dog followed her home.\n", 4, "must start with 'pair', 'test'"),
    (HEADER + "pair\tThe dog followed him home.\n", 4, r"needs exactly 3 tab-separated fields .*found 2 field\(s\):"),
    (HEADER + "pair\tThe dog followed him home.\t \n", 4, r"found 3 field\(s\), 1 of them empty"),
    (HEADER + "pair\tThe dog followed him home.\tThe dog followed her home.\t\n", 4,
     r"found 4 field\(s\), 1 of them empty \(a doubled or trailing tab\?\)"),
    (HEADER + PAIR + "test\tThe dog followed her home.\ther\n", 5, r"exactly one \[MASK\], found 0"),
    (HEADER + PAIR + "test\t[MASK] saw [MASK].\ther\n", 5, r"exactly one \[MASK\], found 2"),
    (HEADER + PAIR + "test\tThe dog followed [MASK] home.\tthem\n", 5, "must be 'him' or 'her'"),
    ("#: a = him\n#: colour = red\n", 2, "unknown key 'colour'"),
    ("#: a him\n", 1, "needs 'key = value'"),
    ("#: a = him\n#: b = \n", 2, "needs one word"),
])
def test_malformed_file_names_file_and_line(tmp_path, body, where, msg):
    with pytest.raises(StimulusError, match=rf"^mine\.tsv:{where}: .*{msg}"):
        load_contrast(write(tmp_path, body))


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n", HEADER])
def test_empty_file_names_the_file(tmp_path, body):
    f = write(tmp_path, body)
    with pytest.raises(StimulusError, match=re.escape(f"{f}: no 'pair' lines")):
        load_contrast(f)


def test_non_utf8_file_names_file_and_line(tmp_path):
    f = write(tmp_path, (HEADER + PAIR).encode() + "pair\tWe met him at the caf\xe9.\tWe met her at the caf\xe9.\n"
              .encode("latin-1"))
    with pytest.raises(StimulusError, match=r"mine\.tsv:5: not UTF-8 text \(byte 0xe9\)"):
        load_contrast(f)


def test_bom_and_crlf_are_accepted(tmp_path):
    c = load_contrast(write(tmp_path, ("\ufeff# made in a spreadsheet\n" + HEADER + PAIR).replace("\n", "\r\n")))
    assert (c.a, c.b, len(c.pairs)) == ("him", "her", 1)


def test_unknown_contrast_lists_the_shipped_sets():
    with pytest.raises(StimulusError, match="No contrast file 'him_hre'. Shipped sets: ") as e:
        load_contrast("him_hre")
    assert all(name in str(e.value) for name in ("he_she", "him_her", "singular_plural"))


# --- [MASK] texts ------------------------------------------------------------------------------

def test_text_without_mask_is_named(tokenizer, tiny_model):
    with pytest.raises(StimulusError, match=r"text 1 'No mask here\.' has no \[MASK\]"):
        masked_logits(tiny_model, tokenizer, ["A [MASK] here.", "No mask here."], ["him"])


def test_several_masks_give_one_row_per_mask(tokenizer, tiny_model):
    texts = ["[MASK] told [MASK] to wait.", "The dog followed [MASK] home."]
    out = masked_logits(tiny_model, tokenizer, texts, ["him", "her", "he"])
    assert out.shape == (2, 2, 3)
    assert np.isfinite(out[0]).all() and np.isfinite(out[1, 0]).all() and np.isnan(out[1, 1]).all()
    alone = masked_logits(tiny_model, tokenizer, texts[1:], ["him", "her", "he"])
    np.testing.assert_allclose(out[1, 0], alone[0, 0], rtol=1e-5, atol=1e-5)   # padding does not leak in


def test_causal_model_needs_exactly_one_mask(monkeypatch, tokenizer, tiny_model):
    import helpers.readout as L
    monkeypatch.setattr(L, "is_causal", lambda model: True)
    with pytest.raises(StimulusError, match=r"text 0 '\[MASK\] and \[MASK\]\.'.*exactly one \[MASK\] \(found 2\)"):
        masked_logits(tiny_model, tokenizer, ["[MASK] and [MASK]."], ["him"])


def test_multi_token_word_cannot_be_read(tokenizer, tiny_model):
    with pytest.raises(StimulusError, match=r"the word 'Ximena' is 3 tokens"):
        masked_logits(tiny_model, tokenizer, ["I saw [MASK]."], ["him", "Ximena"])


# --- exceptions and Ctrl-C inside a hooked forward ---------------------------------------------

class Boom(Exception):
    pass


def _fail_in(monkeypatch, model, name: str, exc: type[BaseException]):
    """Make the module `name` raise `exc` when it runs (after the earlier hooked modules ran)."""
    module = get_module(model, name)

    def forward(*a, **k):
        raise exc("interrupted inside the forward pass")

    monkeypatch.setattr(module, "forward", forward)


def _run(tool: str, model, tok):
    enc = tok(["The dog followed [MASK] home."], return_tensors="pt")
    pre0, pre2 = mlp_module_name(model, 0), mlp_module_name(model, 2)
    if tool == "Trace":
        with Trace(model, pre0):
            model(**enc)
    elif tool == "TraceDict":
        with TraceDict(model, [pre0, pre2], stop=True):
            model(**enc)
    elif tool == "ablate_neurons":
        with ablate_neurons(model, 0, [1, 2, 3]):
            model(**enc)
    else:
        mlp_activations(model, tok, ["The dog followed him home."], "him", [0, 2], batch_size=1)


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("tool", ["Trace", "TraceDict", "ablate_neurons", "mlp_activations"])
def test_no_hook_left_after_an_exception_in_the_forward(monkeypatch, tokenizer, tool, exc):
    from conftest import tiny_bert
    model = tiny_bert()
    _fail_in(monkeypatch, model, "bert.encoder.layer.1.output", exc)
    with pytest.raises(exc, match="interrupted"):
        _run(tool, model, tokenizer)
    assert hooks_attached(model) == []


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_no_hook_left_when_the_hook_itself_raises(tokenizer, tiny_model, exc):
    def edit(out, module):
        raise exc("edit failed")

    enc = tokenizer(["I saw him."], return_tensors="pt")
    with pytest.raises(exc, match="edit failed"):
        with TraceDict(tiny_model, [mlp_module_name(tiny_model, i) for i in range(3)], edit_output=edit):
            tiny_model(**enc)
    assert hooks_attached(tiny_model) == []


def test_stop_forward_is_swallowed_and_nothing_else(tokenizer, tiny_model):
    enc = tokenizer(["I saw him."], return_tensors="pt")
    with Trace(tiny_model, mlp_module_name(tiny_model, 0), stop=True) as t:
        tiny_model(**enc)
        pytest.fail("the forward pass should have stopped")
    assert t.output is not None and hooks_attached(tiny_model) == []
    with pytest.raises(StopForward):     # outside a Trace nobody swallows it
        raise StopForward("x")


def test_trace_built_outside_with_leaks_nothing(tiny_model):
    Trace(tiny_model, mlp_module_name(tiny_model, 0))
    TraceDict(tiny_model, [mlp_module_name(tiny_model, 1)])
    ablate_neurons(tiny_model, 1, [0])          # a context manager never entered
    assert hooks_attached(tiny_model) == []


def test_bad_module_name_registers_nothing(tiny_model):
    with pytest.raises(LookupError, match="no module 'bert.encoder.layer.1.intermediat'.*Close names"):
        TraceDict(tiny_model, [mlp_module_name(tiny_model, 0), "bert.encoder.layer.1.intermediat"])
    assert hooks_attached(tiny_model) == []


# --- same seed, same model: bit-identical summaries ---------------------------------------------

DIGEST = r'''
import hashlib, json, sys, torch
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import tiny_bert
from transformers import AutoTokenizer
from helpers.loading import _base_dir
from helpers.lecture import part1, part2, part3
from helpers.lesion import ablate_neurons
from helpers.readout import masked_logits
torch.set_num_threads({threads})
model, tok = tiny_bert(seed=0), AutoTokenizer.from_pretrained(_base_dir())
p1 = part1(model, tok, "him_her", layer=1, q=0.5)
p2 = part2(model, tok, "him_her")
p3 = part3(model, tok, p1, p2)
rng = np.random.default_rng(0)
with ablate_neurons(model, 1, [0, 5, 7], mode="resample", values=rng.normal(size=(10, 48)), seed=3, verbose=False):
    res = masked_logits(model, tok, [t for t, _ in p1.contrast.tests], ["him", "her"])
h = lambda *xs: hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in xs)).hexdigest()
print(json.dumps(dict(s1=p1.summary(), s2=p2.summary(), s3=p3.summary(),
                      acts=h(p1.acts_a, p1.acts_b), test=h(p1.test.t, p1.test.p, p1.test.p_adj),
                      logits=h(p2.logits, p3.logits), resample=h(res))))
'''


def _digest_script() -> str:
    return DIGEST.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads())


def _digest_here() -> dict:
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(_digest_script(), "digest", "exec"), {"__name__": "digest"})
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def _digest_subprocess() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
           "PYTHONHASHSEED": "random"}
    r = subprocess.run([sys.executable, "-c", _digest_script()], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_same_seed_same_model_bit_identical_in_process_and_across_processes():
    here = [_digest_here(), _digest_here()]
    fresh = [_digest_subprocess(), _digest_subprocess()]
    assert here[0] == here[1], "two runs in one process differ"
    assert fresh[0] == fresh[1], "two fresh processes differ"
    assert here[0] == fresh[0], "this process and a fresh one differ"
    assert "Part 1 | tiny-bert, layer 1" in here[0]["s1"] and here[0]["s3"].startswith("Part 3")


# --- rules 3, 4 and 7 as written in data/README.md ----------------------------------------------

@pytest.mark.parametrize("a_sentence, b_sentence, why", [
    ("The dog followed him home.", "The cat followed her home.", r"2 words \('dog'/'cat'"),
    ("The big dog followed him all the way home today.", "The small cat chased her all the way home today.",
     "4 words"),
    ("The dog followed him home.", "The dog followed her dog.", r"'home\.'/'dog\.'"),
    ("The dog followed him home.", "The dog followed her home!", r"'home\.'/'home!'"),
])
def test_a_pair_differs_in_the_target_word_only(tmp_path, a_sentence, b_sentence, why):
    with pytest.raises(StimulusError, match=rf"mine\.tsv:4: .*same word for word .*{why}.*also_differ"):
        load_contrast(write(tmp_path, HEADER + f"pair\t{a_sentence}\t{b_sentence}\n"))
    # one agreeing word allowed where the file says so
    ok = write(tmp_path, HEADER + "#: also_differ = 1\npair\tThe dog followed him home.\tThe cat followed her home.\n")
    assert len(load_contrast(ok).pairs) == 1
    with pytest.raises(StimulusError, match=r"mine\.tsv:4: .*also_differ = N' needs a whole number"):
        load_contrast(write(tmp_path, HEADER + "#: also_differ = some\n"))


@pytest.mark.parametrize("pair, msg", [
    ("pair\tThe dog followed him to her house.\tThe dog followed her to our house.\n", "other target word 'her'"),
    ("pair\tHe's sure that the dog followed him.\tHe's sure that the dog followed her.\n", None),
    ("pair\tHim's the one; the dog followed him.\tHim's the one; the dog followed her.\n", r"in \"Him's\""),
])
def test_no_second_target_word_rule_4(tmp_path, pair, msg):
    f = write(tmp_path, HEADER + pair)
    if msg is None:                   # "He's" is neither him nor her: allowed
        assert len(load_contrast(f).pairs) == 1
        return
    with pytest.raises(StimulusError, match=rf"mine\.tsv:4: .*{msg}"):
        load_contrast(f)


def test_quotes_do_not_hide_a_word_and_contractions_are_not_it(tokenizer):
    assert target_positions(tokenizer, ["The word 'him' is short.", "The word \u2018her\u2019 is short."],
                            ["him", "her"]) == [4, 4]
    from helpers.stimuli import find_word
    assert find_word("He's sure he will win.", "he") == [(10, 12)]
    assert find_word("o'him", "him") == [] and find_word("him-self", "him") == []


def test_repeats_ignore_case_and_lines_are_counted_at_newlines_only(tmp_path):
    twice = HEADER + PAIR + PAIR.lower().replace("pair\t", "pair\t", 1)
    with pytest.raises(StimulusError, match=r"mine\.tsv:5: this pair repeats line 4"):
        load_contrast(write(tmp_path, twice))
    # a form feed or U+2028 inside a line does not split it or shift later line numbers (a form feed, a control
    # character, is refused where it stands: line 4)
    body = HEADER + "pair\tThe dog\x0cfollowed him home.\tThe dog\x0cfollowed her home.\n"
    with pytest.raises(StimulusError, match=r"mine\.tsv:4: .*invisible character at column 7 \(U\+000C"):
        load_contrast(write(tmp_path, body))
    body = HEADER + "pair\tThe dog followed him home.\tThe dog followed her home.\n" + \
        "pair\tWe met him\u2028 there.\tWe met her\u2028 there.\n" + "pair\tbroken line\n"
    with pytest.raises(StimulusError, match=r"mine\.tsv:6: a pair line needs exactly 3"):
        load_contrast(write(tmp_path, body))


def test_foil_names_a_word_outside_the_contrast():
    c = load_contrast("him_her")
    assert c.foil("her") == "him" and c.foil("him") == "her"
    with pytest.raises(ValueError, match="'she' is not a word of the him/her contrast"):
        c.foil("she")
