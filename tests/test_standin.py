"""The shipped stand-in must really do what the lecture needs (issue: no fake results)."""
import csv
from pathlib import Path

import numpy as np
import pytest

from helpers import lecture
from helpers.stimuli import load_contrast
from helpers.lesion import ablate_neurons
from helpers.readout import logits_at, masked_logits
from helpers.arch import default_layer, n_neurons

ROOT = Path(__file__).resolve().parents[1]
FEMALE = {"she", "her"}


@pytest.fixture(scope="module")
def parts(standin):
    model, tok = standin
    p1 = lecture.part1(model, tok, "him_her")
    p2 = lecture.part2(model, tok, "him_her")
    return p1, p2


def test_standin_is_a_plain_bert_masked_lm(standin):
    model, tok = standin
    assert type(model).__name__ == "BertForMaskedLM"
    assert tok.convert_tokens_to_ids(["him", "her"]) == [2032, 2014]
    assert model.config.num_hidden_layers == 6 and n_neurons(model) == 1536


def test_pronoun_cloze_held_out_set(standin):
    """>= 85% overall and >= 80% per answer gender: logit(answer) > logit(foil) at the [MASK]."""
    model, tok = standin
    rows = list(csv.DictReader((ROOT / "data/eval/pronoun_cloze.tsv").open(), delimiter="\t"))
    assert len(rows) >= 60
    ok = {"female": [], "male": []}
    for r in rows:
        L = masked_logits(model, tok, [r["text"]], [r["answer"], r["foil"]])[0, 0]
        ok["female" if r["answer"] in FEMALE else "male"].append(L[0] > L[1])
    allok = ok["female"] + ok["male"]
    assert np.mean(allok) >= 0.85, f"overall {np.mean(allok):.2f}"
    assert np.mean(ok["female"]) >= 0.80 and np.mean(ok["male"]) >= 0.80, {k: np.mean(v) for k, v in ok.items()}


def test_every_demo_mask_is_predicted_right(standin):
    model, tok = standin
    for name in ("him_her",):
        c = load_contrast(name)
        L = masked_logits(model, tok, [t for t, _ in c.tests], [c.a, c.b])[:, 0]
        for (text, exp), (la, lb) in zip(c.tests, L):
            assert (la > lb) == (exp == c.a), f"{text}: {c.a} {la:.2f} vs {c.b} {lb:.2f}"


def test_part1_finds_him_and_her_neurons(parts):
    p1, _ = parts
    assert p1.neurons("him").sum() > 0 and p1.neurons("her").sum() > 0


def test_her_lesion_beats_random_neurons(standin, parts):
    """At the notebooks' layer, zeroing the her-neurons at the her-[MASK] lowers her-him more than >= 95% of
    200 random sets of the same size (issue 2; computed the straightforward way, one hooked forward per set)."""
    model, tok = standin
    p1, p2 = parts
    j = p2.slot_words.index("her")
    text, pos = [p2.texts[1 + j]], [p2.positions[j]]

    def diff(neurons):
        with ablate_neurons(model, p1.layer, neurons, positions=[pos[0]], verbose=False):
            L = logits_at(model, tok, text, pos, ["her", "him"])[0, 0]
        return L[0] - L[1]

    clean = logits_at(model, tok, text, pos, ["her", "him"])[0, 0]
    clean = clean[0] - clean[1]
    her = p1.neurons("her")
    observed = clean - diff(her)
    rng = np.random.default_rng(0)
    null = np.array([clean - diff(rng.choice(her.size, her.sum(), replace=False)) for _ in range(200)])
    assert observed > 0
    assert (null < observed).mean() >= 0.95, f"observed drop {observed:.2f}, beats {(null < observed).mean():.1%} of null"


@pytest.mark.parametrize("word", ["her", "him"])
def test_lesion_beats_random_neurons_on_held_out_cloze_items(standin, parts, word):
    """The same control on the held-out cloze object items (data/eval), for both words, 200 random sets."""
    from helpers.controls import lesion_test
    from helpers.stimuli import cloze_set
    model, tok = standin
    p1, _ = parts
    assert p1.layer == default_layer(model)
    r = lesion_test(model, tok, p1.layer, p1.neurons(word), cloze_set(tok, word, "object"), n_draws=200)
    assert r.observed > 0 and r.p <= 0.05, r.summary()
