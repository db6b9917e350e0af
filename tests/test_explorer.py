"""helpers.explorer: the pure computation (state.Session.compute) driven directly, and the panel driven like a
student would: set every control, check the numbers and the figure.

The model is a tiny random BERT injected into the Explorer (no download). Figures are counted the way a
notebook front end sees them: an IPython shell captures what the Explorer displays inside its Output
(clear_output empties the capture, as it empties the Output), so stacking figures instead of replacing
them would show up as >1 image.
"""
from __future__ import annotations

import html

import numpy as np
import pytest
import torch

from helpers.explorer import Explorer, Session, Settings, default_sentence
from helpers.lecture import Part1
from helpers.lesion import ablate_neurons
from helpers.readout import masked_logits
from helpers.stats import paired_ttest_fdr
from helpers.stimuli import load_contrast, mask_positions

CORE_WIDGET_MODULES = {"@jupyter-widgets/controls", "@jupyter-widgets/output", "@jupyter-widgets/base"}


def _bert(layers: int = 3, width: int = 48, seed: int = 0, label: str = "tiny-bert"):
    """A tiny random BertForMaskedLM; init 0.2 so that ablating a few neurons moves the logits visibly."""
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=width, max_position_embeddings=128, initializer_range=0.2)
    m = BertForMaskedLM(cfg).eval()
    m.name_or_path = label
    return m


@pytest.fixture(scope="module")
def model():
    return _bert()


@pytest.fixture()
def shell():
    """An IPython shell, so display()/clear_output() go somewhere countable."""
    from IPython.core.interactiveshell import InteractiveShell
    had = InteractiveShell.initialized()
    ip = InteractiveShell.instance()
    yield ip
    if not had:
        InteractiveShell.clear_instance()


@pytest.fixture()
def explorer(model, tokenizer):
    ex = Explorer(model=model, tokenizer=tokenizer)
    ex.refresh()
    return ex


def _images(cap) -> list:
    return [o for o in cap.outputs if "image/png" in o.data]


# --- the computation, without widgets ------------------------------------------------------------

def test_compute_is_the_kits_own_lesion_reported_as_expected_minus_other(model, tokenizer):
    """Session.compute equals ablate_neurons + masked_logits done by hand, and reports logit(expected) -
    logit(other) with the test line's word as the expected one (README "Conventions")."""
    s = Session(model, tokenizer)
    c = load_contrast("him_her")
    text, expected = next((t, w) for t, w in c.tests if w == "him")        # a "him" line, ablating 'her' neurons
    r = s.compute(Settings("him_her", layer=1, word="her", sentence=text))
    assert r.words == ("him", "her") and r.expected == ["him"] and r.word == "her"
    a, b = s.activations(c, 1)
    assert np.array_equal(r.neurons, np.flatnonzero(paired_ttest_fdr(a, b).negative))   # her: t = a - b < 0
    before = masked_logits(model, tokenizer, [text], ["him", "her"])[0]
    with ablate_neurons(model, 1, r.neurons, positions=mask_positions(tokenizer, [text]), verbose=False):
        after = masked_logits(model, tokenizer, [text], ["him", "her"])[0]
    np.testing.assert_allclose(r.before, before, atol=1e-5)
    np.testing.assert_allclose(r.after, after, atol=1e-5)
    (e, o, d0, d1), = r.diffs()
    assert (e, o) == ("him", "her")
    assert d0 == pytest.approx(before[0, 0] - before[0, 1], abs=1e-5) and d1 == pytest.approx(after[0, 0] - after[0, 1],
                                                                                              abs=1e-5)
    assert f"him-her {d0:+.2f} -> {d1:+.2f}" in r.summary()
    free = s.compute(Settings("him_her", layer=1, word="her", sentence="Anna smiled and I thanked [MASK]."))
    assert free.expected == ["her"]                  # not a test line: the ablated set's word is the expected one


def test_compute_depends_on_the_settings_only(model, tokenizer):
    """The same settings give the same numbers in a fresh session and after other settings (caches only save
    time); every setting changes what it should."""
    s1, s2 = Session(model, tokenizer), Session(model, tokenizer)
    base = Settings("him_her", layer=2, q=0.2)
    r1 = s1.compute(base)
    for other in (Settings("he_she", layer=0), Settings("him_her", layer=1, neurons="topk", k=3)):
        s1.compute(other)
    again, fresh = s1.compute(base), s2.compute(base)
    for r in (again, fresh):
        assert np.array_equal(r.neurons, r1.neurons) and np.allclose(r.after, r1.after)
    assert s1.n_captures == 2 and s2.n_captures == 1          # one capture per contrast: every layer at once
    top = s1.compute(Settings("him_her", layer=2, neurons="topk", k=5, word="him"))
    t = top.part1.test.t
    assert np.array_equal(top.neurons, np.sort(np.argsort(-np.nan_to_num(t, nan=-np.inf))[:5]))   # most him-like
    top_her = s1.compute(Settings("him_her", layer=2, neurons="topk", k=5, word="her"))
    assert np.array_equal(top_her.neurons, np.sort(np.argsort(-np.nan_to_num(-t, nan=-np.inf))[:5]))
    assert not np.array_equal(top.neurons, top_her.neurons)
    mean = s1.compute(Settings("him_her", layer=2, mode="mean"))
    assert np.allclose(mean.before, r1.before) and not np.allclose(mean.after, r1.after)
    strict = s1.compute(Settings("him_her", layer=2, q=0.001))
    assert strict.part1.test.significant.sum() <= r1.part1.test.significant.sum()
    by = s1.compute(Settings("him_her", layer=2, q=0.2, method="by"))
    assert by.part1.test.method == "by" and by.part1.test.significant.sum() <= r1.part1.test.significant.sum()


def test_random_sets_match_the_size_and_come_from_the_whole_layer():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 48))
    b = a + rng.normal(scale=0.3, size=a.shape)
    b[:, [3, 7, 9]] -= 2.0                             # three neurons clearly higher in a
    c = load_contrast("him_her")
    p1 = Part1("synthetic", c, 0, "pre", a, b, paired_ttest_fdr(a, b))
    assert np.array_equal(np.flatnonzero(p1.neurons("him")), [3, 7, 9])
    first = Session.neurons(p1, "him", Settings(neurons="random", seed=0))
    assert len(first) == 3 and len(set(first)) == 3
    assert np.array_equal(Session.neurons(p1, "him", Settings(neurons="random", seed=0)), first)   # same seed
    second = Session.neurons(p1, "him", Settings(neurons="random", seed=1))
    assert len(second) == 3 and not np.array_equal(second, first)
    # a set of half the layer: a random control of that size drawn outside the set would be exactly the other
    # half; drawn from the whole layer it overlaps the set by about half (no overlap: probability 3e-14)
    half = np.zeros(48, dtype=bool)
    half[::2] = True
    b2 = a + rng.normal(scale=0.3, size=a.shape)
    b2[:, half] -= 2.0
    p1 = Part1("synthetic", c, 0, "pre", a, b2, paired_ttest_fdr(a, b2))
    assert np.array_equal(p1.neurons("him"), half)
    for seed in range(3):
        draw = Session.neurons(p1, "him", Settings(neurons="random", seed=seed))
        assert len(draw) == 24 and 4 <= half[draw].sum() <= 20


@pytest.mark.parametrize("a_sent, b_sent, masked", [
    ("The mother saw him today.", "The mother saw her today.", "The mother saw [MASK] today."),
    ("Him, the dog never liked.", "Her, the dog never liked.", "[MASK], the dog never liked."),
    ("The hero met him there.", "The hero met her there.", "The hero met [MASK] there.")])
def test_default_sentence_masks_the_target_as_a_word(tmp_path, a_sent, b_sent, masked):
    """A contrast without test lines: the default sentence masks the first b sentence's target word as a whole
    word (a substring replace made 'The mot[MASK] saw her today.', and left a capitalised 'Her' unmasked)."""
    f = tmp_path / "mine.tsv"
    f.write_text(f"#: a = him\n#: b = her\npair\t{a_sent}\t{b_sent}\n", encoding="utf-8")
    assert default_sentence(load_contrast(f)) == masked


def test_a_failed_refresh_leaves_no_stale_result(explorer, tmp_path, shell):
    """Switching to a contrast that cannot be computed (one pair: no t-test) shows the error and clears the
    result, the numbers and the figure: nothing of the previous contrast stays on screen."""
    from IPython.utils.capture import capture_output
    one = tmp_path / "one_pair.tsv"
    one.write_text("#: a = him\n#: b = her\npair\tWe met him.\tWe met her.\n", encoding="utf-8")
    ex = explorer
    ex.w_contrast.options = list(ex.w_contrast.options) + [str(one)]
    with capture_output() as cap:
        ex.refresh()
        assert ex.result is not None and len(_images(cap)) == 1
        ex.w_contrast.value = str(one)
        assert ex.result is None and ex.last_png is None and ex.summary.value == ""
        assert "at least 2 pairs" in ex.message and len(_images(cap)) == 0
        ex.w_contrast.value = "he_she"                       # and it recovers
        assert ex.result.words == ("he", "she") and len(_images(cap)) == 1


def test_an_edited_contrast_file_is_read_again(model, tokenizer, tmp_path):
    """The Session keys its caches by content, not by the file's name: after the file is edited (other pairs,
    another test line), the same settings show the new pairs' t-test and the new test line's expected word,
    and the activations are captured again; an unchanged file is not read into a new capture."""
    c = load_contrast("him_her")
    f = tmp_path / "mine.tsv"

    def write(pairs, test):
        f.write_text("#: a = him\n#: b = her\n" + "".join(f"pair\t{x}\t{y}\n" for x, y in pairs)
                     + f"test\t{test}\n", encoding="utf-8")
    him_line = next(t for t in c.tests if t[1] == "him")
    write(c.pairs[:20], "\t".join(him_line))
    s = Session(model, tokenizer)
    first = s.compute(Settings(str(f), layer=1, word="her", sentence=him_line[0]))
    assert first.contrast.pairs == c.pairs[:20] and first.expected == ["him"] and s.n_captures == 1
    assert s.compute(Settings(str(f), layer=1)).contrast is first.contrast and s.n_captures == 1
    write(c.pairs[20:45], f"{him_line[0]}\ther")                          # same name, other content
    second = s.compute(Settings(str(f), layer=1, word="her", sentence=him_line[0]))
    assert second.contrast.pairs == c.pairs[20:45] and second.part1.test.n_pairs == 25
    assert second.expected == ["her"] and default_sentence(second.contrast) == him_line[0]
    assert s.n_captures == 2
    a, b = s.activations(second.contrast, 1)
    np.testing.assert_allclose(second.part1.test.t, paired_ttest_fdr(a, b).t)
    assert a.shape[0] == 25


def test_settings_that_would_be_computed_wrongly_are_refused(model, tokenizer):
    """k=-3 sliced all but 3 neurons ([:-3]: 45 of 48 ablated); k above the layer's width, an unknown neuron
    kind or mode are errors that name the setting."""
    for bad, says in ((dict(neurons="topk", k=-3), "k .*must be a whole number 1 or more, got -3"),
                      (dict(k=0), "got 0"), (dict(k=2.5), "got 2.5"), (dict(k=True), "got True"),
                      (dict(neurons="best"), "neurons must be one of"), (dict(mode="resample"), "mode must be one of")):
        with pytest.raises(ValueError, match=says):
            Settings(**bad)
    with pytest.raises(ValueError, match="k=49, but layer 1 has 48 neurons"):
        Session(model, tokenizer).compute(Settings("him_her", layer=1, neurons="topk", k=49))
    assert len(Session(model, tokenizer).compute(Settings("him_her", layer=1, neurons="topk", k=48)).neurons) == 48


def test_a_typed_test_line_is_found_whatever_its_case(model, tokenizer):
    """The expected word comes from the test line even when the sentence is typed in another case or spacing
    (and [mask] in lower case): ablating 'her' neurons on a 'him' line still expects 'him'."""
    c = load_contrast("him_her")
    text = next(t for t, w in c.tests if w == "him")
    typed = "  " + text.lower().replace(" ", "  ", 1)                      # "[mask]", other case and spacing
    r = Session(model, tokenizer).compute(Settings("him_her", layer=1, word="her", sentence=typed))
    assert r.error is None and r.expected == ["him"]


def test_a_model_left_in_train_mode_is_named(tokenizer, shell):
    """The kit measures in eval mode, so the numbers are those of eval mode; the result, its summary and the
    panel say that the model was left in train mode (dropout) and to call model.eval()."""
    m = _bert(seed=5).train()
    ex = Explorer(model=m, tokenizer=tokenizer)
    res = ex.refresh()
    ref = Session(_bert(seed=5), tokenizer).compute(ex.settings())             # the same model in eval mode
    assert "tiny-bert is in train mode (dropout on)" in res.note and "model.eval()" in res.note
    assert res.summary().startswith(res.note) and "train mode" in ex.summary.value
    np.testing.assert_allclose(res.after, ref.after, atol=1e-5)
    assert m.training and ref.note == ""


# --- the panel ------------------------------------------------------------------------------------

def test_starts_on_the_injected_model(explorer):
    r = explorer.result
    assert explorer.w_model.value == "tiny-bert" and r.model == "tiny-bert"
    assert r.layer == 2 == explorer.w_layer.value and explorer.w_layer.max == 2   # default_layer of 3 layers
    assert r.words == ("him", "her") and r.contrast.name == "him/her" and r.word == "her"
    assert r.before.shape == r.after.shape == (1, 2)
    assert "tiny-bert" in explorer.header.value and "not bert-base-uncased" in explorer.header.value
    assert set(explorer.w_contrast.options) >= {"him_her", "he_she", "singular_plural"}
    assert explorer.last_png.startswith(b"\x89PNG")


def test_every_control_reaches_the_settings_and_leaves_one_figure(model, tokenizer, shell):
    """Each control changes exactly its field of settings(), the result follows it, the figure is redrawn,
    and the Output holds one figure all along."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        ex = Explorer(model=model, tokenizer=tokenizer)
        ex.refresh()
        pngs = [ex.last_png]
        steps = [(ex.w_layer, 0, "layer"), (ex.w_q, 0.2, "q"), (ex.w_method, "by", "method"),
                 (ex.w_word, "him", "word"), (ex.w_kind, "topk", "neurons"), (ex.w_k, 5, "k"),
                 (ex.w_kind, "random", "neurons"), (ex.w_mode, "mean", "mode"),
                 (ex.w_sentence, "The teacher thanked [MASK] and then [MASK] left.", "sentence")]
        for widget, value, field in steps:
            before = ex.settings()
            widget.value = value
            after = ex.settings()
            assert getattr(after, field) == value and getattr(before, field) != value
            assert {f for f in after.__dataclass_fields__ if getattr(after, f) != getattr(before, f)} == {field}
            r = ex.result
            assert {"layer": r.layer, "q": r.q, "method": r.method, "word": r.word, "neurons": r.neuron_kind,
                    "mode": r.mode, "sentence": r.sentence, "k": len(r.neurons) if r.neuron_kind == "topk" else 5
                    }[field] == value
            assert len(_images(cap)) == 1 and len(cap.outputs) == 1
            assert ex.last_png != pngs[-1], f"the figure was not redrawn after {field}"
            pngs.append(ex.last_png)
        assert ex.result.before.shape == (2, 2)
        rnd = ex.result.neurons
        ex.w_reseed.click()
        assert ex.settings().seed == 1 and len(ex.result.neurons) == len(rnd)
        assert not np.array_equal(ex.result.neurons, rnd), "a new draw must draw new neurons"
        ex.w_contrast.value = "he_she"
        assert ex.result.words == ("he", "she") and [v for _, v in ex.w_word.options] == ["he", "she"]
        assert ex.w_word.value == "she" and "'she' neurons (she > he)" in dict(ex.w_word.options).keys()
    assert len(_images(cap)) == 1


def test_moving_controls_does_not_recompute_activations(explorer):
    ex = explorer
    assert ex.n_captures == 1                       # all layers at once
    for w, v in ((ex.w_q, 0.01), (ex.w_method, "by"), (ex.w_word, "him"), (ex.w_kind, "topk"), (ex.w_k, 3),
                 (ex.w_layer, 1), (ex.w_layer, 0), (ex.w_mode, "mean"), (ex.w_mode, "zero"), (ex.w_q, 0.1)):
        w.value = v
    assert ex.n_captures == 1
    ex.w_contrast.value = "he_she"                  # a new contrast is new activations
    assert ex.n_captures == 2
    ex.w_contrast.value = "him_her"
    assert ex.n_captures == 2


def test_progress_is_shown_while_activations_are_computed(model, tokenizer):
    ex = Explorer(model=model, tokenizer=tokenizer)
    seen = []
    ex.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    ex.refresh()
    steps = [v for v in seen if v > 0]
    assert ex.progress.max > 1 and steps[: ex.progress.max] == list(range(1, ex.progress.max + 1))   # per batch
    assert "activations ready" in ex.progress_label.value and ex.progress.bar_style == "success"


def test_sentence_without_mask_gives_a_readable_message(explorer, shell):
    from IPython.utils.capture import capture_output
    ex = explorer
    with capture_output() as cap:
        ex.w_sentence.value = "Nothing is hidden in this sentence."
        assert ex.result.error and ex.result.before is None and ex.result.after is None
        assert "[MASK]" in ex.message and "Nothing is hidden in this sentence." in ex.message
        assert "[MASK]" in ex.status.value
        assert len(_images(cap)) == 1                   # the t-values are still drawn, with the message
        ex.w_sentence.value = ""
        assert "Type a sentence" in ex.message
        ex.w_sentence.value = "She thanked [mask] for the flowers."   # lower-case [mask] is fine
        assert ex.message == "" and ex.result.before.shape == (1, 2)
        assert len(_images(cap)) == 1


def test_bert_base_offline_shows_a_message_and_keeps_the_model(explorer, monkeypatch):
    import helpers.loading as loading
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "_is_cached_on_hub_cache", lambda name: False)
    ex = explorer
    before = ex.result
    ex.w_model.value = "bert-base-uncased"              # the real loader, offline
    assert ex.w_model.value == "tiny-bert"
    assert "bert-base-uncased" in ex.message and "stand-in" in ex.message
    assert "load_mlm(" not in ex.message and ex.message.count("set KIT_MODEL") == 1   # its advice once
    assert "Cannot" in ex.status.value
    assert ex.model.name_or_path == "tiny-bert" and ex.result is before
    ex.w_q.value = 0.1                                  # still works afterwards
    assert ex.result.q == 0.1 and ex.result.model == "tiny-bert"


def test_switching_model_loads_once_and_updates_the_layer_range(model, tokenizer):
    calls = []
    other = _bert(layers=2, width=40, seed=3, label="tiny-2")

    def loader(name):
        calls.append(name)
        return other, tokenizer

    ex = Explorer(model=model, tokenizer=tokenizer, loader=loader)
    ex.refresh()
    ex.w_model.value = "stand-in"
    assert calls == ["stand-in"]
    assert ex.w_layer.max == 1 and ex.result.layer == ex.w_layer.value == 1
    assert ex.result.part1.test.t.shape == (40,) and ex.w_k.max == 40
    assert "tiny-2" in ex.header.value
    ex.w_model.value = "tiny-bert"
    ex.w_model.value = "stand-in"
    assert calls == ["stand-in"]                        # loaded once, then cached
    assert ex.n_captures == 2                           # one capture per model


def test_only_core_widgets(explorer):
    """Colab renders core ipywidgets only (custom widget managers are fragile there)."""
    seen, todo = set(), [explorer.ui]
    while todo:
        w = todo.pop()
        seen.add(w._model_module)
        todo.extend(getattr(w, "children", ()))
    assert seen <= CORE_WIDGET_MODULES


def test_figure_names_the_model_and_shows_the_ablated_neurons(explorer):
    fig = explorer.figure()
    ax_t, ax_l = fig.axes
    assert "tiny-bert" in ax_t.get_title() and "tiny-bert" in ax_l.get_title()
    assert any(t.get_text().startswith("ablated") for t in ax_t.get_legend().get_texts())
    assert "[MASK]" in ax_l.get_title()
    labels = [t.get_text() for t in ax_l.get_xticklabels()]
    e, o, d0, d1 = explorer.result.diffs()[0]
    assert labels == [f"[MASK] 1 before\n{e}-{o} {d0:+.2f}", f"[MASK] 1 after\n{e}-{o} {d1:+.2f}"]
    from test_plots import legend_colours_missing, tick_label_overlaps
    # a sentence with two [MASK]s: four labelled bar groups, drawn at the panel's dpi
    explorer.w_sentence.value = "The nurse told the doctor that [MASK] had called, and he thanked [MASK] twice."
    fig = explorer.figure()
    fig.set_dpi(80)
    assert len(fig.axes[1].get_xticklabels()) == 4
    assert tick_label_overlaps(fig) == [] and legend_colours_missing(fig) == []


def test_unavailable_start_model_falls_back_to_the_stand_in_and_says_so(model, tokenizer):
    from helpers.loading import ModelUnavailable

    def loader(name):
        if name == "bert-base-uncased":
            raise ModelUnavailable("the hub is unreachable")
        return model, tokenizer

    ex = Explorer(model_name="bert-base-uncased", loader=loader)
    assert ex.model is model
    header = html.unescape(ex.header.value)
    assert "Could not load 'bert-base-uncased'" in header and "using the stand-in" in header


def test_long_sentence_default_swapping_expected_word_and_reseed(explorer):
    """A sentence longer than the model takes is a message in the panel (the result follows the controls);
    a contrast without test lines keeps default-sentence swapping; [mask] in lower case still finds the
    expected word; the re-draw button is there only for random sets."""
    ex = explorer
    ex.w_sentence.value = "The teacher thanked [MASK] for the help. " + "word " * 200
    ex.w_q.value = 0.01
    r = ex.result
    assert r.q == 0.01 and r.before is None and "tokens long" in r.error and "Shorten" in r.error
    ex.w_sentence.value = default_sentence(ex.contrast)
    assert ex.result.before is not None and ex.result.error is None
    ex.w_contrast.value = "him_her_context"
    assert ex.w_sentence.value == default_sentence(load_contrast("him_her_context"))
    ex.w_contrast.value = "he_she"
    assert ex.w_sentence.value == load_contrast("he_she").tests[0][0]
    ex.w_contrast.value = "him_her"
    text, word = load_contrast("him_her").tests[0]
    ex.w_sentence.value = text.replace("[MASK]", "[mask]")
    assert f"(expected: '{word}')" in ex.figure().axes[1].get_title() and ex.result.expected == [word]
    ex.w_kind.value = "selected"
    assert ex.w_reseed.layout.display == "none"
    ex.on_reseed()
    assert ex.settings().seed == 0
    ex.w_kind.value = "random"
    assert ex.w_reseed.layout.display == ""
    ex.on_reseed()
    assert ex.settings().seed == 1
