"""helpers.widgets.Explorer driven like a student would: set every control, check the numbers and the figure.

The model is a tiny random BERT injected into the Explorer (no download). Figures are
counted the way a notebook front end sees them: an IPython shell captures what the
Explorer displays inside its Output (clear_output empties the capture, as it empties
the Output), so stacking figures instead of replacing them would show up as >1 image.
"""
from __future__ import annotations

import html

import numpy as np
import pytest
import torch

from helpers.stimuli import load_contrast
from helpers.widgets import Explorer

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


def test_starts_on_the_injected_model(explorer):
    r = explorer.result
    assert explorer.w_model.value == "tiny-bert" and r.model == "tiny-bert"
    assert r.layer == 2 == explorer.w_layer.value and explorer.w_layer.max == 2   # default_layer of 3 layers
    assert r.words == ("him", "her") and r.contrast.name == "him/her"
    assert r.before.shape == r.after.shape == (1, 2)
    assert "tiny-bert" in explorer.header.value and "not bert-base-uncased" in explorer.header.value
    assert set(explorer.w_contrast.options) >= {"him_her", "he_she", "singular_plural"}
    assert explorer.last_png.startswith(b"\x89PNG")


def test_every_control_changes_the_result_and_leaves_one_figure(model, tokenizer, shell):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        ex = Explorer(model=model, tokenizer=tokenizer)
        ex.refresh()
        pngs = [ex.last_png]

        def changed(expect_new_png: bool = True):
            """After each change: one image in the Output, and a new one when the figure should differ."""
            assert len(_images(cap)) == 1, f"{len(_images(cap))} figures in the Output after {ex.n_draws} draws"
            assert len(cap.outputs) == 1
            if expect_new_png:
                assert ex.last_png != pngs[-1], "the figure was not redrawn"
            pngs.append(ex.last_png)

        t2 = ex.result.part1.test.t.copy()
        ex.w_layer.value = 0
        assert ex.result.layer == 0 and ex.result.part1.layer == 0
        assert not np.allclose(ex.result.part1.test.t, t2, equal_nan=True)
        changed()

        ex.w_set.value = "b"
        ex.w_q.value = 0.001
        strict = ex.result.n_significant
        ex.w_q.value = 0.2
        assert ex.result.q == 0.2 and ex.result.part1.test.q == 0.2
        assert ex.result.n_significant >= strict
        changed()

        ex.w_method.value = "by"
        assert ex.result.part1.test.method == "by"
        assert ex.result.n_significant <= int(ex.result.part1.test.p_adj.size)
        changed()

        test = ex.result.part1.test
        ex.w_set.value = "a"
        assert np.array_equal(ex.result.neurons, np.flatnonzero(test.positive))
        changed()
        ex.w_set.value = "b"
        assert np.array_equal(ex.result.neurons, np.flatnonzero(test.negative))
        changed()

        ex.w_set.value = "topk"
        ex.w_k.value = 5
        top = np.sort(np.argsort(-np.nan_to_num(np.abs(test.t), nan=-1))[:5])
        assert np.array_equal(ex.result.neurons, top)
        changed()

        ex.w_set.value = "random_b"
        rnd = ex.result.neurons
        assert len(rnd) == test.negative.sum() and len(np.unique(rnd)) == len(rnd)
        changed()
        draws = ex.n_draws
        ex.w_reseed.click()
        assert ex.n_draws == draws + 1 and len(ex.result.neurons) == len(rnd)
        assert not np.array_equal(ex.result.neurons, rnd), "a new draw must draw new neurons"
        changed()

        ex.w_set.value = "b"
        zero_after = ex.result.after.copy()
        ex.w_mode.value = "mean"
        assert ex.result.mode == "mean"
        assert np.allclose(ex.result.before, ex.result.before)
        assert not np.allclose(ex.result.after, zero_after)
        changed()

        ex.w_sentence.value = "The teacher thanked [MASK] and then [MASK] left."
        assert ex.result.before.shape == (2, 2)
        changed()

        ex.w_contrast.value = "he_she"
        assert ex.result.words == ("he", "she")
        assert "'he' neurons" in dict((v, k) for k, v in ex.w_set.options)["a"]
        changed()

    assert ex.n_draws >= len(pngs) == 12
    assert len(_images(cap)) == 1


def test_random_sets_match_the_size_and_come_from_the_whole_layer(explorer):
    from helpers.lecture import Part1
    from helpers.stats import paired_ttest_fdr
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 48))
    b = a + rng.normal(scale=0.3, size=a.shape)
    b[:, [3, 7, 9]] -= 2.0                             # three neurons clearly higher in a
    p1 = Part1("synthetic", explorer.contrast, 0, "pre", a, b, paired_ttest_fdr(a, b))
    assert np.array_equal(np.flatnonzero(p1.test.positive), [3, 7, 9])
    with explorer._holding():
        explorer.w_set.value = "random_a"
    first = explorer._neurons(p1)
    assert len(first) == 3 and len(set(first)) == 3
    assert np.array_equal(explorer._neurons(p1), first)   # same seed, same draw
    explorer.on_reseed()
    second = explorer._neurons(p1)
    assert len(second) == 3 and not np.array_equal(second, first)

    # a set of half the layer: a random control of that size drawn outside the set would be exactly
    # the other half (the opposite set, not a random one); drawn from the whole layer it overlaps
    # the set by about half (no overlap at all has probability 1 / C(48, 24) ~ 3e-14)
    half = np.zeros(48, dtype=bool)
    half[::2] = True
    b2 = a + rng.normal(scale=0.3, size=a.shape)
    b2[:, half] -= 2.0
    p1 = Part1("synthetic", explorer.contrast, 0, "pre", a, b2, paired_ttest_fdr(a, b2))
    assert np.array_equal(p1.test.positive, half)
    for _ in range(3):
        draw = explorer._neurons(p1)
        assert len(draw) == 24 and 4 <= half[draw].sum() <= 20
        explorer.on_reseed()


def test_moving_q_method_set_mode_does_not_recompute_activations(explorer):
    ex = explorer
    assert ex.n_captures == 1                       # pre-GELU, all layers at once
    for w, v in ((ex.w_q, 0.01), (ex.w_method, "by"), (ex.w_set, "a"), (ex.w_set, "topk"), (ex.w_k, 3),
                 (ex.w_layer, 1), (ex.w_layer, 0), (ex.w_q, 0.1), (ex.w_method, "bh")):
        w.value = v
    assert ex.n_captures == 1
    ex.w_mode.value = "mean"                        # mean ablation needs post-GELU means: one more capture
    assert ex.n_captures == 2
    for v in ("zero", "mean", "zero", "mean"):
        ex.w_mode.value = v
    ex.w_layer.value = 2
    assert ex.n_captures == 2
    ex.w_contrast.value = "he_she"                  # a new contrast is new activations
    assert ex.n_captures == 4                       # pre for the t-test, post for the mean
    ex.w_contrast.value = "him_her"
    assert ex.n_captures == 4
    assert {k[1:] for k in ex._acts} >= {("him/her", 0, "pre"), ("him/her", 2, "post"), ("he/she", 1, "pre")}


def test_progress_is_shown_while_activations_are_computed(model, tokenizer):
    ex = Explorer(model=model, tokenizer=tokenizer)
    seen = []
    ex.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    ex.refresh()
    assert ex.progress.max > 1 and seen == list(range(1, ex.progress.max + 1))   # one step per batch
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
    import helpers.models as models
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_is_cached_on_hub_cache", lambda name: False)
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
    from test_plots import legend_colours_missing, tick_label_overlaps
    # a sentence with two [MASK]s: four labelled bar groups, drawn at the panel's dpi
    explorer.w_sentence.value = "The nurse told the doctor that [MASK] had called, and he thanked [MASK] twice."
    fig = explorer.figure()
    fig.set_dpi(80)
    assert len(fig.axes[1].get_xticklabels()) == 4
    assert tick_label_overlaps(fig) == [] and legend_colours_missing(fig) == []


def test_unavailable_start_model_falls_back_to_the_stand_in_and_says_so(model, tokenizer):
    from helpers.models import ModelUnavailable

    def loader(name):
        if name == "bert-base-uncased":
            raise ModelUnavailable("the hub is unreachable")
        return model, tokenizer

    ex = Explorer(model_name="bert-base-uncased", loader=loader)
    assert ex.model is model
    header = html.unescape(ex.header.value)
    assert "Could not load 'bert-base-uncased'" in header and "using the stand-in" in header


def test_review_fixes_long_sentence_defaults_expected_word_and_reseed(explorer):
    """A sentence longer than the model takes is a message in the panel (the result follows the controls);
    a contrast without test lines keeps default-sentence swapping; [mask] in lower case still finds the
    expected word; the re-draw button is there only for random sets."""
    ex = explorer
    ex.w_sentence.value = "The teacher thanked [MASK] for the help. " + "word " * 200
    ex.w_q.value = 0.01
    r = ex.result
    assert r.q == 0.01 and r.before is None and "tokens long" in r.error and "Shorten" in r.error
    ex.w_sentence.value = ex._default_sentence()
    assert ex.result.before is not None and ex.result.error is None
    ex.w_contrast.value = "him_her_context"
    ex.w_contrast.value = "he_she"
    assert ex.w_sentence.value == load_contrast("he_she").tests[0][0]
    ex.w_contrast.value = "him_her"
    text, word = load_contrast("him_her").tests[0]
    ex.w_sentence.value = text.replace("[MASK]", "[mask]")
    assert f"(expected: '{word}')" in ex.figure().axes[1].get_title()
    ex.w_set.value = "b"
    assert ex.w_reseed.layout.display == "none"
    seed = ex._seed
    ex.on_reseed()
    assert ex._seed == seed
    ex.w_set.value = "random_b"
    assert ex.w_reseed.layout.display == ""
    ex.on_reseed()
    assert ex._seed == seed + 1
