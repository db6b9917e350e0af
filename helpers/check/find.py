"""Checkers for notebook 01's exercises: (a) the target token, (b) a capture hook, (c) the t-test and BH mask.

Each runs the student's function on small inputs and compares it with the kit's own answer on the same
model and tokenizer (no stored numbers), then with the usual wrong answers, to name the mistake.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as st
from statsmodels.stats.multitest import fdrcorrection

from ..arch import mlp_module_name, model_device, n_layers
from ..capture import mlp_activations
from ..hooks import TraceDict, eval_mode, get_module, hooks_attached, right_padding
from ..stimuli import find_word, target_positions
from ._report import Mistake, as_array, close, diagnose, passed, run

SPLIT_CANDIDATES = ("Ximena", "Oyelaran", "Thistlewood", "Zbigniewska", "Quetzalcoatl")


def split_word(tokenizer) -> tuple[str, list[str]]:
    """A name this tokenizer splits into two or more pieces, and its pieces."""
    for w in SPLIT_CANDIDATES:
        pieces = tokenizer.tokenize(w)
        if len(pieces) >= 2:
            return w, pieces
    raise RuntimeError("no candidate word is split by this tokenizer")    # pragma: no cover


def _position_cases(tokenizer) -> list[tuple[str, str]]:
    w, _ = split_word(tokenizer)
    return [("She thanked him for the ride.", "him"), ("Him, she had never met before.", "him"),
            (f"The letter from {w} arrived today.", w), ("They said 'her' twice, then left.", "her"),
            (f"{w} waved at us from the bus.", w)]


def target_position(fn, tokenizer) -> bool:
    """(a) fn(tokenizer, sentence, word) -> the token index of `word` (its last piece), [CLS] counted."""
    __tracebackhide__ = True
    ex = "(a) target_position"
    cases = _position_cases(tokenizer)
    got = [run(ex, fn, tokenizer, s, w) for s, w in cases]
    for g, (s, w) in zip(got, cases):
        if isinstance(g, (list, tuple, np.ndarray, torch.Tensor)) or isinstance(g, bool) or not float(g).is_integer():
            raise Mistake(ex, f"for {s!r} you returned {g!r}; return one int, the index of one token")
    got = np.array([int(g) for g in got])
    want = np.array([target_positions(tokenizer, [s], w)[0] for s, w in cases])
    if np.array_equal(got, want):
        return passed(ex, f"right on {len(cases)} sentences, including a word split into pieces "
                          f"({split_word(tokenizer)[0]!r} -> {split_word(tokenizer)[1]})")
    first = np.array([target_positions(tokenizer, [s], w, wordpiece="first")[0] for s, w in cases])
    words = np.array([[x.strip(".,'").lower() for x in s.split()].index(w.lower()) for s, w in cases])
    chars = np.array([find_word(s, w)[0][0] for s, w in cases])
    w, pieces = split_word(tokenizer)
    diagnose(ex, got, {
        "your index is one too small for every sentence: the tokenizer puts [CLS] at index 0 of input_ids, and "
        "the model sees it, so count it (take indices from tokenizer(sentence) with its special tokens)": want - 1,
        "your index is one too large for every sentence: index 0 is [CLS] itself, so the first word is at 1":
            want + 1,
        f"right for one-piece words, but {w!r} is split into {pieces}: you returned its FIRST piece; the kit reads "
        f"a split word at its LAST piece (where the whole word has been read)": first,
        f"right for one-piece words, but for {w!r} ({pieces}) you returned the first piece and forgot [CLS]":
            first - 1,
        "you counted words (sentence.split()), not tokens: the model's positions are token indices, with [CLS] "
        "first and words split into pieces": words,
        "you returned a character offset into the sentence, not a token index (tokenizer(..., "
        "return_offsets_mapping=True) maps characters to tokens)": chars,
    }, tol=0)
    bad = int(np.flatnonzero(got != want)[0])
    raise Mistake(ex, f"for {cases[bad][0]!r} and {cases[bad][1]!r} you returned {got[bad]}, the kit finds "
                      f"{want[bad]} (tokens: {tokenizer.convert_ids_to_tokens(tokenizer(cases[bad][0])['input_ids'])})")


CAPTURE_SENTENCES = ["She thanked him for the ride.", "We met him at the old station.",
                     "The teacher praised him after the long concert."]


def _all_tokens(model, tokenizer, sentences, layer: int, site: str) -> list[np.ndarray]:
    """Every token's MLP values at (layer, site), per sentence: [n_tokens, n_neurons] each."""
    out = []
    name = mlp_module_name(model, layer, site)
    with torch.no_grad(), eval_mode(model), right_padding(tokenizer):
        for s in sentences:
            enc = tokenizer(s, return_tensors="pt").to(model_device(model))
            with TraceDict(model, [name]) as td:
                model(**enc)
            out.append(td[name].output[0].float().cpu().numpy())
    return out


class _Probe(Exception):
    """Raised inside the model by the capture check, to see whether a hook survives a failed forward pass."""


def _leak_after_failure(fn, model, tokenizer, layer: int) -> list:
    """Run fn while every forward pass fails at its start; the hooks fn leaves behind."""
    def boom(module, args):
        raise _Probe("a forward pass that fails (planted by the check)")

    handle = model.register_forward_pre_hook(boom)
    try:
        fn(model, tokenizer, CAPTURE_SENTENCES[:1], "him", layer)
    except Exception:  # noqa: BLE001  the planted failure, as the student's code lets it through
        pass
    finally:
        handle.remove()
    return hooks_attached(model)


def capture_mlp(fn, model, tokenizer) -> bool:
    """(b) fn(model, tokenizer, sentences, word, layer) -> [n_sentences, n_neurons] MLP values before GELU
    (the output of encoder.layer[layer].intermediate.dense) at `word`; its hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(b) capture_mlp"
    before = hooks_attached(model)
    if before:
        raise Mistake(ex, f"hooks were attached before the check ran ({before[:3]}): an earlier run of your code "
                          f"left them; run helpers.check.remove_hooks(model), then this cell again")
    layer = max(1, n_layers(model) // 2)
    got = as_array(run(ex, fn, model, tokenizer, CAPTURE_SENTENCES, "him", layer), ex, "your result")
    left = hooks_attached(model)
    if left:
        raise Mistake(ex, f"your hook is still attached after your function returned ({left[0][0]}): every later "
                          f"forward pass runs it. Remove it (handle.remove()) in a finally: block, or use a with "
                          f"block (helpers.hooks.Trace)")
    _compare_capture(ex, got, model, tokenizer, layer)
    left = _leak_after_failure(fn, model, tokenizer, layer)
    if left:
        for name, _ in left:
            get_module(model, name)._forward_hooks.clear()
        raise Mistake(ex, f"right values, but when the forward pass fails your hook stays attached ({left[0][0]}; "
                          f"the check removed it): put handle.remove() in a finally: block, or use a with block")
    return passed(ex, f"pre-GELU values at the target token of layer {layer}, {got.shape[1]} neurons x "
                      f"{got.shape[0]} sentences; the hook is removed even when the forward pass fails")


def _compare_capture(ex: str, got: np.ndarray, model, tokenizer, layer: int) -> None:
    """Raise Mistake unless `got` equals the kit's capture; name the variant it matches."""
    want = mlp_activations(model, tokenizer, CAPTURE_SENTENCES, "him", [layer], verbose=False)[layer]
    if close(got, want, 1e-4):
        return
    if got.shape != want.shape:
        raise Mistake(ex, f"your result has shape {got.shape}; expected {want.shape} = (sentences, neurons): "
                          f"one row per sentence, the values at the target token only")
    pos = target_positions(tokenizer, CAPTURE_SENTENCES, "him")
    pre, post = (_all_tokens(model, tokenizer, CAPTURE_SENTENCES, layer, s) for s in ("pre", "post"))
    at = lambda vals, shift: np.stack([v[p + shift] for v, p in zip(vals, pos)])  # noqa: E731
    variants = {
        "you read the values AFTER GELU (the output of `intermediate`); this exercise asks for the values "
        "before it, the output of `intermediate.dense`": at(post, 0),
        "your token is one too early: the position must count [CLS] at index 0": at(pre, -1),
        "your token is one too late": at(pre, 1),
        "you read the [CLS] token (index 0), not the target word": np.stack([v[0] for v in pre]),
        "you averaged over all tokens; read the row of the target token only": np.stack([v.mean(0) for v in pre]),
    }
    for other in (layer - 1, layer + 1):
        if 0 <= other < n_layers(model):
            vals = _all_tokens(model, tokenizer, CAPTURE_SENTENCES, other, "pre")
            variants[f"these are layer {other}'s values, not layer {layer}'s: the check asked for layer {layer} "
                     f"(model.bert.encoder.layer[{layer}])"] = at(vals, 0)
    diagnose(ex, got, variants)
    raise Mistake(ex, f"your values differ from the kit's (largest difference {np.nanmax(np.abs(got - want)):.3g}); "
                      f"check the module (encoder.layer[L].intermediate.dense), the token and eval mode")


def _ttest_data(seed: int = 0, n: int = 16, width: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Paired data whose neurons range from no effect to a strong one, in both directions, so that the BH mask,
    p < q, BY and Bonferroni all differ."""
    rng = np.random.default_rng(seed)
    effect = np.concatenate([np.linspace(0, 1.6, width // 2), -np.linspace(0, 1.6, width // 2)])
    b = rng.normal(size=(n, width))
    a = b + effect + rng.normal(size=(n, width))
    return a, b


def paired_test(fn) -> bool:
    """(c) fn(acts_a, acts_b, q) -> (t, significant): paired t of a - b per neuron, and the BH rejection mask."""
    __tracebackhide__ = True
    ex = "(c) paired_test"
    a, b = _ttest_data()
    out = run(ex, fn, a.copy(), b.copy(), 0.05)
    if not isinstance(out, tuple) or len(out) != 2:
        raise Mistake(ex, f"return two things, (t, significant); got {type(out).__name__}")
    t = as_array(out[0], ex, "t")
    sig = np.asarray(out[1].detach().cpu() if isinstance(out[1], torch.Tensor) else out[1])
    ref = st.ttest_rel(a, b, axis=0)
    if not close(t, ref.statistic, 1e-6):
        diagnose(ex, t, {
            "your t has the opposite sign: the kit's convention is t = mean(a - b) / (sd / sqrt(n)), so t > 0 "
            "marks the neurons more active for a (him)": -ref.statistic,
            "that is the independent-samples t-test (ttest_ind); the sentences come in matched pairs, so use "
            "the paired test (ttest_rel), which removes what the two sentences of a pair share":
                st.ttest_ind(a, b, axis=0).statistic,
        }, tol=1e-6)
        raise Mistake(ex, "your t differs from scipy.stats.ttest_rel(a, b, axis=0).statistic")
    if sig.shape != t.shape or sig.dtype != bool:
        raise Mistake(ex, f"`significant` must be a boolean array with one entry per neuron {t.shape}, got "
                          f"{sig.dtype} {sig.shape}")
    p = ref.pvalue
    bh = fdrcorrection(p, alpha=0.05)[0]
    if np.array_equal(sig, bh):
        return passed(ex, f"paired t (a - b) and the BH mask: {int(bh.sum())} of {bh.size} neurons pass, "
                          f"where p < 0.05 would pass {int((p < 0.05).sum())}")
    diagnose(ex, sig, {
        "your mask is p < q, with no correction: with one test per neuron, about q of the null neurons pass by "
        "chance. Use the BH rejection mask, fdrcorrection(p, alpha=q)[0]": p < 0.05,
        "that is the Benjamini-Yekutieli mask (method='negcorr'); this exercise asks for Benjamini-Hochberg":
            fdrcorrection(p, alpha=0.05, method="negcorr")[0],
        "that is Bonferroni (p < q / m): it controls the chance of any false positive, stricter than the false "
        "discovery rate that BH controls; use fdrcorrection(p, alpha=q)[0]": p < 0.05 / p.size,
        "your mask is the BH-adjusted p, not the rejection mask: fdrcorrection returns (rejected, p_adjusted); "
        "take [0]": fdrcorrection(p, alpha=0.05)[1],
        "your mask marks the neurons that do NOT pass: it is inverted": ~bh,
    }, tol=0)
    raise Mistake(ex, f"your mask passes {int(sig.sum())} neurons, the BH mask at q=0.05 passes {int(bh.sum())}")
