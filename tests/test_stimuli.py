"""helpers.stimuli: the contrast-file loader and target_positions. Every bad line is refused with the file and
line (or the sentence and word) at fault; the rules of data/README.md hold; every shipped contrast loads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from helpers.arch import mlp_module_name
from helpers.capture import mlp_activations
from helpers.hooks import Trace, hooks_attached
from helpers.lecture import part1
from helpers.stimuli import (CLOZE, CONTRASTS, StimulusError, cloze_set, fill_mask, find_word, list_contrasts,
                             load_contrast, target_positions, text_key)

HEADER = "#: name = test\n#: a = him\n#: b = her\n"
PAIR = "pair\tThe dog followed him home.\tThe dog followed her home.\n"
SPLIT = ["The letter from Ximena arrived today.", "We met Ximena at the station."]   # xi ##men ##a


def write(tmp_path, text: str | bytes, name: str = "mine.tsv") -> Path:
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return f


# --- target_positions: the target word in sentences -----------------------------------------------

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


def test_target_twice_names_the_sentence(tokenizer):
    with pytest.raises(StimulusError, match=r"sentence 0 'Him\? I told him\.' contains the target word 'him' 2 times"):
        target_positions(tokenizer, ["Him? I told him."], "him")


def test_unequal_sentences_and_words(tokenizer):
    with pytest.raises(StimulusError, match="3 sentences but 2 target words"):
        target_positions(tokenizer, ["a him", "b him", "c her"], ["him", "him"])


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


def test_quotes_do_not_hide_a_word_and_contractions_are_not_it(tokenizer):
    assert target_positions(tokenizer, ["The word 'him' is short.", "The word \u2018her\u2019 is short."],
                            ["him", "her"]) == [4, 4]
    assert find_word("He's sure he will win.", "he") == [(10, 12)]
    assert find_word("o'him", "him") == [] and find_word("him-self", "him") == []


def test_target_words_the_tokenizer_cannot_read_are_named(tokenizer):
    with pytest.raises(StimulusError, match=r"sentence 0 .*reads the target word '🙂' as \[UNK\]"):
        target_positions(tokenizer, ["I gave him a 🙂 today."], "🙂")
    with pytest.raises(StimulusError, match=r"sentence 1 .*glues the target word 'him'"):
        target_positions(tokenizer, ["We saw him.", "We saw x\u200bhim."], "him")


# --- a contrast file's lines: file and line named -------------------------------------------------

def test_missing_target_in_a_file_names_file_and_line(tmp_path):
    f = write(tmp_path, HEADER + PAIR + "pair\tThe dog followed him home.\tThe dog followed them home.\n")
    with pytest.raises(StimulusError, match=r"mine\.tsv:5: 'The dog followed them home\.' must contain 'her'"):
        load_contrast(f)


def test_target_twice_in_a_file_names_file_and_line(tmp_path):
    f = write(tmp_path, HEADER + "pair\tI told him to call him.\tI told her to call him.\n")
    with pytest.raises(StimulusError, match=r"mine\.tsv:4: 'I told him to call him\.' must contain 'him' "
                                            r"exactly once as a word, found 2"):
        load_contrast(f)


@pytest.mark.parametrize("b_sentence, why", [
    ("Nobody told her about the change of plans.", r"differ in 8 words \('The'/'Nobody'"),   # from another pair
    ("Her dog followed home.", r"have 8 and 4 words"),
])
def test_misaligned_pair_in_a_file_names_the_line(tmp_path, b_sentence, why):
    f = write(tmp_path, HEADER + PAIR + f"pair\tThe dog followed him across the garden yesterday.\t{b_sentence}\n")
    with pytest.raises(StimulusError, match=rf"mine\.tsv:5: the two sentences of a pair must be the same word for "
                                            rf"word .*{why}"):
        load_contrast(f)


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


@pytest.mark.parametrize("body, msg", [
    (HEADER + PAIR + "#: a = me\npair\tThe dog followed me home.\tThe dog followed her home.\n",
     r"^mine\.tsv:5: '#: a = \.\.\.' comes after the first pair/test line \(mine\.tsv:4\)"),
    (HEADER + PAIR + "#: description = late\n", r"^mine\.tsv:5: '#: description = \.\.\.' comes after"),
    ("#: a = him\n#: b = Him\n" + PAIR.replace("her", "him"),
     r"^mine\.tsv:2: a and b are both 'Him'; a contrast needs two different target words"),
    (HEADER + PAIR + "pair\tWe met him.\tWe met her.\n" + PAIR,
     r"^mine\.tsv:6: this pair repeats line 4 \(mine\.tsv:4\)"),
    ("#: a = him\n" + HEADER + PAIR, r"^mine\.tsv:\d: '#: a' is set twice \(first at mine\.tsv:1\)"),
    (HEADER + PAIR + "test\tWe saw [MASK] there.\ther\ntest\tWe  saw [MASK] there.\ther\n",
     r"^mine\.tsv:6: this test text repeats line 5 \(mine\.tsv:5\)"),
])
def test_contrast_file_errors_name_file_and_line(tmp_path, body, msg):
    with pytest.raises(StimulusError, match=msg):
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
        "# a comment\u2028 that goes on\n" + "pair\tbroken line\n"
    with pytest.raises(StimulusError, match=r"mine\.tsv:6: a pair line needs exactly 3"):
        load_contrast(write(tmp_path, body))
    body = HEADER + "pair\tWe met him\u2028 there.\tWe met her\u2028 there.\n"      # in a sentence it is refused
    with pytest.raises(StimulusError, match=r"mine\.tsv:4: .*column 10 \(U\+2028 LINE SEPARATOR\)"):
        load_contrast(write(tmp_path, body))


@pytest.mark.parametrize("line, says", [
    ("pair\tThe her-like voice called him.\tThe her-like voice called her.\n",
     r"holds the other target word 'her' in 'her-like'"),
    ("pair\tThe dog followed him-self home.\tThe dog followed her home.\n", r"its own target word 'him' in 'him-self'"),
    ("pair\tThe dog followed \u200bhim home.\tThe dog followed her home.\n",
     r"invisible character at column 17 \(U\+200B ZERO WIDTH SPACE\)"),
    ("pair\tThe dog followed him\u00ad home.\tThe dog followed her home.\n", r"U\+00AD SOFT HYPHEN"),
    ("pair\tThe dog followed\u00a0him home.\tThe dog followed her home.\n",
     r"invisible character at column 16 \(U\+00A0 NO-BREAK SPACE\)"),
    ("pair\tThe dog followed him home.\tThe dog followed her\u202fhome.\n", r"U\+202F NARROW NO-BREAK SPACE"),
])
def test_contrast_lines_that_fool_the_tokenizer_are_refused_with_file_and_line(tmp_path, line, says):
    with pytest.raises(StimulusError, match=rf"mine\.tsv:4: .*{says}"):
        load_contrast(write(tmp_path, HEADER + line))


# --- rules 3, 4 and 7 as written in data/README.md ------------------------------------------------

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


# --- the shipped sets, by name --------------------------------------------------------------------

def test_contrast_folder_and_bare_file_name(tmp_path):
    with pytest.raises(StimulusError, match=r"is a folder, not a contrast file.*him_her\.tsv"):
        load_contrast(CONTRASTS)
    with pytest.raises(StimulusError, match="is a folder, not a contrast file"):
        load_contrast(tmp_path)
    by_name = load_contrast("him_her")
    with_ext = load_contrast("him_her.tsv")
    assert (with_ext.a, with_ext.b, with_ext.pairs, with_ext.tests) == (by_name.a, by_name.b, by_name.pairs,
                                                                         by_name.tests)
    with pytest.raises(StimulusError, match="No contrast file 'him_hre.tsv'. Shipped sets: "):
        load_contrast("him_hre.tsv")


def test_unknown_contrast_lists_the_shipped_sets():
    with pytest.raises(StimulusError, match="No contrast file 'him_hre'. Shipped sets: ") as e:
        load_contrast("him_hre")
    assert all(name in str(e.value) for name in ("he_she", "him_her", "singular_plural"))


@pytest.mark.parametrize("name", list_contrasts())
def test_every_shipped_contrast_still_loads(name):
    c = load_contrast(name)
    assert c.pairs and c.a.lower() != c.b.lower() and len(set(c.pairs)) == len(c.pairs)
    assert load_contrast(f"{name}.tsv").pairs == c.pairs


def test_shipped_agreement_pairs_still_line_up():
    """Agreement sets may change the words that agree (noun and verb): not a misalignment."""
    assert len(load_contrast("singular_plural").pairs) == 60


def test_foil_names_a_word_outside_the_contrast():
    c = load_contrast("him_her")
    assert c.foil("her") == "him" and c.foil("him") == "her"
    with pytest.raises(ValueError, match="'she' is not a word of the him/her contrast"):
        c.foil("she")


# --- the [MASK] evaluation file and sentence matching ---------------------------------------------

@pytest.mark.parametrize("bad, says", [
    ("She waved at [MASK].\ther\thim\tobject\t", r"found 5, 1 of them empty \(a doubled or trailing tab\?\)"),
    ("She waved at [MASK].\ther", "found 2"),
])
def test_a_bad_cloze_line_is_named_with_file_and_line(tokenizer, tmp_path, bad, says):
    """cloze_set refuses a line that is not text, answer, foil, role, naming file:line (not "too many values to
    unpack"), and reads the shipped file as before."""
    lines = CLOZE.read_text(encoding="utf-8").splitlines()
    f = write(tmp_path, "\n".join(lines[:3] + [bad] + lines[3:]) + "\n", "cloze.tsv")
    with pytest.raises(StimulusError, match=rf"cloze\.tsv:4: a cloze line needs exactly 4 tab-separated fields "
                                            rf"\(text, answer, foil, role\).*{says}"):
        cloze_set(tokenizer, "her", path=f)
    ev = cloze_set(tokenizer, "her")
    assert len(ev) > 0 and (ev.target, ev.foil) == ("her", "him")


def test_test_lines_are_matched_ignoring_case_and_spacing(tmp_path):
    """A typed sentence is a test line whatever its case, spacing or spelling of [MASK]; a [MASK] that starts a
    sentence is filled in capitalised, so the two lines of a demo sentence fill in to the same clean text."""
    c = load_contrast(write(tmp_path, HEADER + PAIR + "test\tShe saw [MASK] there.\thim\n"))
    assert c.expected("she saw  [mask] there.") == "him" and c.expected("She saw him there.") is None
    assert text_key("He  left.") == text_key("he left.")
    assert fill_mask("[MASK] called, and she answered.", "he") == "He called, and she answered."
    assert fill_mask("Then [MASK] left. [MASK] came back.", "she") == "Then she left. She came back."
