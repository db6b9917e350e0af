"""Property-based tests (hypothesis): stimulus parsing, target location, and hooks that change nothing.

- Any valid contrast file (random words, comments, blank lines, CRLF, a BOM) loads to exactly
  what was written; one corruption anywhere is a StimulusError naming that file and line.
- target_positions finds the target's token in random word sequences, for either
  wordpiece policy, checked against an independent count of wordpieces.
- A forward pass with no-op hooks (Trace, TraceDict, an empty ablation) is bit-identical
  to the plain forward pass.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers.hooks import Trace, TraceDict, hooks_attached
from helpers.lesion import ablate_neurons
from helpers.arch import mlp_module_name
from helpers.stimuli import MASK, StimulusError, load_contrast, target_positions

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lower-case ASCII words; the targets are drawn from a separate pool so a filler word never equals one.
TARGETS = ["him", "her", "he", "she", "is", "are", "cat", "dogs", "ximena", "bartholomew"]
filler = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9).filter(lambda w: w not in TARGETS)
punct = st.sampled_from(["", "", ".", "?", "!", ","])


# --- contrast files --------------------------------------------------------------------------

@st.composite
def contrast_files(draw):
    """(lines, expected pairs, expected tests, a, b): a valid contrast file as a list of lines."""
    a, b = draw(st.lists(st.sampled_from(TARGETS), min_size=2, max_size=2, unique=True))
    lines = [draw(st.sampled_from(["", "# a comment", "#   another one"]))] if draw(st.booleans()) else []
    lines += [f"#: name = random {a}/{b}", f"#: a = {a}", f"#: b = {b}"]
    if draw(st.booleans()):
        lines.append("#: description = made up by hypothesis")
    pairs, tests = [], []
    for _ in range(draw(st.integers(1, 6))):
        words = draw(st.lists(filler, min_size=1, max_size=8))
        at = draw(st.integers(0, len(words)))
        end = draw(punct)
        x = " ".join(words[:at] + [a] + words[at:]) + end
        y = " ".join(words[:at] + [b] + words[at:]) + end
        if (x, y) in pairs:                       # a repeated pair is an error (tested elsewhere)
            continue
        pairs.append((x, y))
        lines.append(f"pair\t{x}\t{y}")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# between pairs"])))
    for _ in range(draw(st.integers(0, 3))):
        words = draw(st.lists(filler, min_size=1, max_size=6))
        at = draw(st.integers(0, len(words)))
        text = " ".join(words[:at] + [MASK] + words[at:]) + "."
        exp = draw(st.sampled_from([a, b]))
        if any(t == text for t, _ in tests):      # a repeated test text is an error (tested elsewhere)
            continue
        tests.append((text, exp))
        lines.append(f"test\t{text}\t{exp}")
    return lines, pairs, tests, a, b


def _write(lines, newline="\n", bom=False, data: bytes | None = None) -> Path:
    f = Path(tempfile.mkdtemp()) / "random.tsv"
    f.write_bytes(data if data is not None else (("\ufeff" if bom else "") + newline.join(lines) + newline)
                  .encode("utf-8"))
    return f


@SETTINGS
@given(contrast_files(), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_valid_files_load_to_what_was_written(spec, newline, bom):
    lines, pairs, tests, a, b = spec
    c = load_contrast(_write(lines, newline, bom))
    assert (c.a, c.b, c.name) == (a, b, f"random {a}/{b}")
    assert c.pairs == pairs and c.tests == tests


def _corrupt(lines, a, b, kind, draw_index):
    """Break one pair/test line (or the header) in a way the format forbids; return (lines, line number)."""
    body = [i for i, s in enumerate(lines) if s.startswith(("pair\t", "test\t"))]
    pair_lines = [i for i in body if lines[i].startswith("pair\t")]
    test_lines = [i for i in body if lines[i].startswith("test\t")]
    out = list(lines)
    if kind == "drop_field":
        i = body[draw_index % len(body)]
        out[i] = "\t".join(out[i].split("\t")[:2])
    elif kind == "spaces_not_tabs":
        i = body[draw_index % len(body)]
        out[i] = out[i].replace("\t", " ")
    elif kind == "unknown_kind":
        i = body[draw_index % len(body)]
        out[i] = "pairs" + out[i][4:]
    elif kind == "target_missing":
        i = pair_lines[draw_index % len(pair_lines)]
        k, x, y = out[i].split("\t")
        out[i] = "\t".join([k, x, re.sub(rf"\b{b}\b", "zzz", y)])
    elif kind == "target_twice":
        i = pair_lines[draw_index % len(pair_lines)]
        k, x, y = out[i].split("\t")
        out[i] = "\t".join([k, f"{a} {x}", y])
    elif kind == "no_mask" and test_lines:
        i = test_lines[draw_index % len(test_lines)]
        out[i] = out[i].replace(MASK, "it")
    elif kind == "two_masks" and test_lines:
        i = test_lines[draw_index % len(test_lines)]
        out[i] = out[i].replace(MASK, f"{MASK} {MASK}")
    elif kind == "wrong_expected" and test_lines:
        i = test_lines[draw_index % len(test_lines)]
        out[i] = out[i].rsplit("\t", 1)[0] + "\tzzz"
    elif kind == "unknown_key":
        i = next(j for j, s in enumerate(lines) if s.startswith("#: a"))
        out.insert(i, "#: colour = red")
    elif kind == "header_after_pairs":
        i = next(j for j, s in enumerate(lines) if s.startswith("#: b"))
        out.pop(i)
        out.append(f"#: b = {b}")
        i = body[0] - 1          # the first body line moved up by one
    elif kind == "not_utf8":
        i = body[draw_index % len(body)]
        return out, i + 1, b"\xff"
    else:
        return None
    return out, i + 1, None


@SETTINGS
@given(contrast_files(), st.sampled_from(["drop_field", "spaces_not_tabs", "unknown_kind", "target_missing",
                                          "target_twice", "no_mask", "two_masks", "wrong_expected",
                                          "unknown_key", "header_after_pairs", "not_utf8"]),
       st.integers(0, 100))
def test_one_corruption_is_an_error_naming_file_and_line(spec, kind, idx):
    lines, pairs, tests, a, b = spec
    broken = _corrupt(lines, a, b, kind, idx)
    assume(broken is not None)
    out, line_no, bad_bytes = broken
    if bad_bytes is None:
        f = _write(out)
    else:
        text = "\n".join(out) + "\n"
        start = sum(len(s.encode()) + 1 for s in out[: line_no - 1])
        data = text.encode()
        f = _write(out, data=data[:start] + bad_bytes + data[start:])
    with pytest.raises(StimulusError, match=rf"^random\.tsv:{line_no}: "):
        load_contrast(f)


@SETTINGS
@given(st.sampled_from(["", "\n", "# nothing\n", "\n\n# still nothing\n\n"]))
def test_files_without_pairs_name_the_file(body):
    f = _write([], data=body.encode())
    with pytest.raises(StimulusError, match=re.escape(f"{f}: no 'pair' lines")):
        load_contrast(f)


# --- target location -------------------------------------------------------------------------

def _pieces(tokenizer, words) -> int:
    return sum(len(tokenizer.tokenize(w)) for w in words)


@SETTINGS
@given(st.lists(filler, min_size=0, max_size=12), st.sampled_from(TARGETS), st.data())
def test_target_positions_find_the_word(tokenizer, words, target, data):
    at = data.draw(st.integers(0, len(words)))
    shown = data.draw(st.sampled_from([target, target.upper(), target.capitalize()]))
    end = data.draw(punct)
    sentence = " ".join(words[:at] + [shown] + words[at:]) + end
    n_before, n_target = _pieces(tokenizer, words[:at]), len(tokenizer.tokenize(target))
    # [CLS] + the wordpieces of the words before the target, then the target's own pieces
    assert target_positions(tokenizer, [sentence], target, wordpiece="first") == [1 + n_before]
    assert target_positions(tokenizer, [sentence], target) == [n_before + n_target]
    ids = tokenizer(sentence)["input_ids"]
    pos = n_before + n_target
    assert tokenizer.convert_ids_to_tokens(ids[1 + n_before: pos + 1]) == tokenizer.tokenize(target)


@SETTINGS
@given(st.lists(filler, min_size=1, max_size=10), st.sampled_from(TARGETS), st.data())
def test_target_absent_or_twice_is_an_error_naming_the_sentence(tokenizer, words, target, data):
    sentence = " ".join(words)
    with pytest.raises(StimulusError, match=re.escape(f"{sentence!r} does not contain the target word {target!r}")):
        target_positions(tokenizer, [sentence], target)
    i, j = sorted(data.draw(st.lists(st.integers(0, len(words)), min_size=2, max_size=2)))
    twice = " ".join(words[:i] + [target] + words[i:j] + [target] + words[j:])
    with pytest.raises(StimulusError, match=re.escape(f"{twice!r} contains the target word {target!r} 2 times")):
        target_positions(tokenizer, [twice], target)


# --- a no-op hook changes nothing -------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1000, 29000), min_size=1, max_size=20), st.integers(0, 2), st.sampled_from(["pre", "post"]),
       st.booleans())
def test_no_op_hooks_give_the_plain_forward_exactly(tiny_model, ids, layer, site, batch_of_two):
    x = torch.tensor([ids, ids[::-1]] if batch_of_two else [ids])
    with torch.no_grad():
        plain = tiny_model(input_ids=x).logits
        with Trace(tiny_model, mlp_module_name(tiny_model, layer, site), edit_output=lambda out, m: out):
            traced = tiny_model(input_ids=x).logits
        names = [mlp_module_name(tiny_model, i, s) for i in range(3) for s in ("pre", "post")]
        with TraceDict(tiny_model, names):
            traced_all = tiny_model(input_ids=x).logits
        with ablate_neurons(tiny_model, layer, [], site=site, verbose=False):
            empty = tiny_model(input_ids=x).logits
        with ablate_neurons(tiny_model, layer, [0, 1], positions=[[]] * x.shape[0], site=site):
            untouched_rows = tiny_model(input_ids=x).logits       # every row left alone
    for out in (traced, traced_all, empty, untouched_rows):
        assert torch.equal(out, plain)
    assert hooks_attached(tiny_model) == []
