"""Checkers for notebook 01's exercises: (a) the target token, (b) a capture hook, (c) the t-test and BH mask.

Each runs the student's function on small inputs and compares it with the kit's own answer on the same
model and tokenizer (no stored numbers), then with the usual wrong answers, to name the mistake.

    (a) target_position   [CLS] forgotten or counted twice, the first piece of a split word, a word found
                          inside another word ('her' in 'mother'), words or characters counted instead of tokens
    (b) capture_mlp       post-GELU instead of pre, one token off, [CLS], a mean over tokens, the layer's input
                          or the block's output, a neighbouring layer, a transposed result; a hook left attached
                          after the function returns, or after a forward pass that fails
    (c) paired_test       t's sign flipped, an unpaired test, sd with ddof=0, p-values for t, t along the wrong
                          axis; p < q instead of the BH mask, BY, Bonferroni, adjusted p, an inverted or one-sided
                          mask, 0/1 numbers instead of booleans, q ignored
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as st
from statsmodels.stats.multitest import fdrcorrection

from ..arch import mlp_module_name, model_device, n_layers
from ..capture import mlp_activations
from ..hooks import TraceDict, eval_mode, hooks_attached, right_padding
from ..stimuli import find_word, target_positions
from ._report import Mistake, NotDone, StudentError, as_array, close, diagnose, passed, run, take_hooks_off

SPLIT_CANDIDATES = ("Ximena", "Oyelaran", "Thistlewood", "Zbigniewska", "Quetzalcoatl")


def returned(ex: str, value, what: str = "your function"):
    """`value`, unless it is None (a function without `return`): then a Mistake that says so."""
    if value is None:
        raise Mistake(ex, f"{what} returned None: is the `return` line missing (or inside the loop)?")
    return value


def split_word(tokenizer) -> tuple[str, list[str]]:
    """A name this tokenizer splits into two or more pieces, and its pieces."""
    for w in SPLIT_CANDIDATES:
        pieces = tokenizer.tokenize(w)
        if len(pieces) >= 2:
            return w, pieces
    raise RuntimeError("no candidate word is split by this tokenizer")    # pragma: no cover


INSIDE = ("The mother waved to her from the bus.", "her")    # 'her' is also inside 'mother'


def _position_cases(tokenizer) -> list[tuple[str, str]]:
    w, _ = split_word(tokenizer)
    return [("She thanked him for the ride.", "him"), ("Him, she had never met before.", "him"),
            (f"The letter from {w} arrived today.", w), ("They said 'her' twice, then left.", "her"),
            (f"{w} waved at us from the bus.", w), INSIDE]


def _one_int(ex: str, value, sentence: str) -> int:
    """The student's position as an int: an int, a numpy integer or a one-element integer tensor/array."""
    returned(ex, value)
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)) \
            or not float(value).is_integer():
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        raise Mistake(ex, f"for {sentence!r} you returned {type(value).__name__} {shown}; return one int, the index "
                          f"of one token (a list or an array of indices is not one position)")
    return int(value)


def _substring_positions(tokenizer, cases) -> np.ndarray:
    """Where a solution lands that finds the word's letters anywhere (str.index), not as a whole word."""
    out = []
    for s, w in cases:
        start = s.lower().index(w.lower())
        end = start + len(w)
        offs = tokenizer(s, return_offsets_mapping=True)["offset_mapping"]
        out.append([i for i, (a, b) in enumerate(offs) if b > a and a < end and b > start][-1])
    return np.array(out)


def _tokens_shown(tokenizer, sentence: str) -> str:
    toks = tokenizer.convert_ids_to_tokens(tokenizer(sentence)["input_ids"])
    return " ".join(f"{i}:{t}" for i, t in enumerate(toks))


def target_position(fn, tokenizer) -> None:
    """(a) fn(tokenizer, sentence, word) -> the token index of `word` (its last piece), [CLS] counted."""
    __tracebackhide__ = True
    ex = "(a) target_position"
    cases = _position_cases(tokenizer)
    w, pieces = split_word(tokenizer)

    def context(s, x):
        split = f", which this tokenizer splits into {pieces}: it is not one token" if x == w else ""
        return f"on {s!r} (word {x!r}{split})"

    got = np.array([_one_int(ex, run(ex, fn, tokenizer, s, x, context=context(s, x)), s) for s, x in cases])
    want = np.array([target_positions(tokenizer, [s], x)[0] for s, x in cases])
    if np.array_equal(got, want):
        return passed(ex, f"right on {len(cases)} sentences, including a word split into pieces "
                          f"({w!r} -> {pieces}) and 'her' next to 'mother'")
    first = np.array([target_positions(tokenizer, [s], x, wordpiece="first")[0] for s, x in cases])
    words = np.array([[y.strip(".,'").lower() for y in s.split()].index(x.lower()) for s, x in cases])
    chars = np.array([find_word(s, x)[0][0] for s, x in cases])
    k = cases.index(INSIDE)
    diagnose(ex, got, {
        "your index is one too small for every sentence: you forgot [CLS]. The tokenizer puts [CLS] at index 0 "
        "of input_ids and the model sees it, so count it (take the indices from tokenizer(sentence), special "
        "tokens included, not from tokenizer.tokenize(sentence))": want - 1,
        "your index is one too large for every sentence: [CLS] is index 0 itself, so the first word is at 1 "
        "(did you add 1 for [CLS] to indices that already count it?)": want + 1,
        f"right for one-piece words, but {w!r} is split into {pieces} and you returned its FIRST piece; the kit "
        f"reads a split word at its LAST piece ({pieces[-1]!r}), where the model has read the whole word": first,
        f"{w!r} is split into {pieces}: you returned its first piece, and every index is one too small "
        f"(count [CLS] at 0, and take the LAST piece)": first - 1,
        f"right, except in {INSIDE[0]!r}: you found the letters 'her' inside 'mother' (str.index / str.find look "
        f"for letters, not words). Look for the whole word, e.g. re.search(r'\\b' + word + r'\\b', sentence, "
        f"re.IGNORECASE), or compare tokens": _substring_positions(tokenizer, cases),
        "you counted words (sentence.split()), not tokens: the model's positions are token indices, with [CLS] "
        "first and words split into pieces": words,
        "you returned a character offset into the sentence, not a token index (tokenizer(..., "
        "return_offsets_mapping=True) gives each token's characters: pick the tokens inside the word)": chars,
    }, tol=0)
    bad = int(np.flatnonzero(got != want)[0])
    extra = " (the letters 'her' are also inside 'mother': find the whole word)" if bad == k else ""
    raise Mistake(ex, f"for {cases[bad][0]!r} and the word {cases[bad][1]!r} you returned {got[bad]}, but the word "
                      f"is at {want[bad]}{extra}. The model's tokens, with their indices: "
                      f"{_tokens_shown(tokenizer, cases[bad][0])}")


CAPTURE_SENTENCES = ["She thanked him for the ride.", "We met him at the old station.",
                     "The teacher praised him after the long concert."]


def _all_tokens(model, tokenizer, sentences, names: list[str]) -> dict[str, list[np.ndarray]]:
    """Every token's output of each module in `names`, per sentence: {name: [[n_tokens, width], ...]}, from one
    forward pass per sentence."""
    out = {name: [] for name in names}
    with torch.no_grad(), eval_mode(model), right_padding(tokenizer):
        for s in sentences:
            enc = tokenizer(s, return_tensors="pt").to(model_device(model))
            with TraceDict(model, names) as td:
                model(**enc)
            for name in names:
                out[name].append(td[name].output[0].float().cpu().numpy())
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


def capture_mlp(fn, model, tokenizer) -> None:
    """(b) fn(model, tokenizer, sentences, word, layer) -> [n_sentences, n_neurons] MLP values before GELU
    (the output of encoder.layer[layer].intermediate.dense) at `word`; its hook removed whatever happens."""
    __tracebackhide__ = True
    ex = "(b) capture_mlp"
    before = hooks_attached(model)
    if before:
        raise Mistake(ex, f"hooks were attached before the check ran ({before[0][0]}): an earlier run of your "
                          f"code left them, and they run in every forward pass. Run "
                          f"helpers.check.remove_hooks(model), then this cell again")
    layer = max(1, n_layers(model) // 2)
    try:
        out = run(ex, fn, model, tokenizer, CAPTURE_SENTENCES, "him", layer)
    except (StudentError, NotDone):
        take_hooks_off(model)      # a hook your failed run left would change every later result
        raise
    got = as_array(returned(ex, out), ex, "your result")
    left = take_hooks_off(model)
    if left:
        raise Mistake(ex, f"your hook is still attached after your function returned (on {left[0][0]}; the check "
                          f"removed it): every later forward pass would run it. Remove it before you return, in a "
                          f"finally: block (handle.remove()), so that it goes even when the forward pass fails")
    _compare_capture(ex, got, model, tokenizer, layer)
    left = _leak_after_failure(fn, model, tokenizer, layer)
    if left:
        take_hooks_off(model)
        raise Mistake(ex, f"right values, but when the forward pass fails your hook stays attached (on {left[0][0]}; "
                          f"the check removed it). Put the forward pass in try: and handle.remove() in finally:, "
                          f"so the hook goes whatever happens")
    return passed(ex, f"pre-GELU values at the target token of layer {layer}, {got.shape[0]} sentences x "
                      f"{got.shape[1]} neurons; the hook is removed even when the forward pass fails")


def _shape_mistake(ex: str, got: np.ndarray, want: np.ndarray, model) -> None:
    """Raise the Mistake that explains a result of the wrong shape."""
    n, width = want.shape
    hidden = getattr(model.config, "hidden_size", None)
    if got.shape == (width, n):
        raise Mistake(ex, f"your result is transposed, {got.shape}: return one ROW per sentence, "
                          f"shape (sentences, neurons) = {want.shape} (np.stack of the rows, or .T)")
    if got.ndim == 2 and got.shape[0] == n and hidden is not None and got.shape[1] == hidden != width:
        raise Mistake(ex, f"you have {hidden} values per sentence: the width of the residual stream, not of the MLP "
                          f"expansion ({width} neurons). You read the hook's input (or the block's output); the "
                          f"neurons are the OUTPUT of intermediate.dense")
    if got.ndim == 3 or (got.ndim == 2 and got.shape[1] == width and got.shape[0] > n):
        raise Mistake(ex, f"your result has shape {got.shape}: it still holds every token (or the batch "
                          f"dimension). Keep one row per sentence, the target token's: output[0, position]")
    raise Mistake(ex, f"your result has shape {got.shape}; expected {want.shape} = (sentences, neurons): one row "
                      f"per sentence, the values at the target token only")


def _compare_capture(ex: str, got: np.ndarray, model, tokenizer, layer: int) -> None:
    """Raise Mistake unless `got` equals the kit's capture; name the variant it matches."""
    want = mlp_activations(model, tokenizer, CAPTURE_SENTENCES, "him", [layer], verbose=False)[layer]
    if close(got, want, 1e-4):
        return
    if got.shape != want.shape:
        _shape_mistake(ex, got, want, model)
    pos = target_positions(tokenizer, CAPTURE_SENTENCES, "him")
    others = [L for L in (layer - 1, layer + 1) if 0 <= L < n_layers(model)]
    names = {key: mlp_module_name(model, L, site) for key, L, site in
             [("pre", layer, "pre"), ("post", layer, "post")] + [(L, L, "pre") for L in others]}
    vals = _all_tokens(model, tokenizer, CAPTURE_SENTENCES, list(names.values()))
    pre, post = vals[names["pre"]], vals[names["post"]]
    at = lambda rows, shift: np.stack([v[p + shift] for v, p in zip(rows, pos)])  # noqa: E731
    variants = {
        "you read the values AFTER GELU (the output of `intermediate`, or GELU applied to the output); this "
        "exercise asks for the values before it: hook `intermediate.dense`": at(post, 0),
        "your token is one too early: you forgot [CLS]. The position must count [CLS] at index 0 (tokenizer(s)"
        "['input_ids'] includes it; tokenizer.tokenize(s) does not)": at(pre, -1),
        "your token is one too late: did you add 1 for [CLS] to an index that already counts it?": at(pre, 1),
        "you read the [CLS] token (index 0), not the target word": np.stack([v[0] for v in pre]),
        "you read the last token ([SEP]), not the target word": np.stack([v[-1] for v in pre]),
        "you averaged over all tokens; read the row of the target token only": np.stack([v.mean(0) for v in pre]),
    }
    for other in others:
        variants[f"these are layer {other}'s values, not layer {layer}'s: hook the `layer` you are given "
                 f"({names['pre']}; layers count from 0)"] = at(vals[names[other]], 0)
    diagnose(ex, got, variants)
    raise Mistake(ex, f"your values differ from the kit's (largest difference {np.nanmax(np.abs(got - want)):.3g}); "
                      f"check the module (encoder.layer[layer].intermediate.dense, its output), the token "
                      f"(the word's last piece, [CLS] counted) and that the model is in eval mode")


def _ttest_data(seed: int = 0, n: int = 16, width: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Paired data whose neurons range from no effect to a strong one, in both directions, so that the BH mask,
    p < q, BY and Bonferroni all differ."""
    rng = np.random.default_rng(seed)
    effect = np.concatenate([np.linspace(0, 1.6, width // 2), -np.linspace(0, 1.6, width // 2)])
    b = rng.normal(size=(n, width))
    a = b + effect + rng.normal(size=(n, width))
    return a, b


def _as_pair(ex: str, out) -> tuple:
    returned(ex, out)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Mistake(ex, f"return two things, `return t, significant`; got {type(out).__name__}"
                          + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return returned(ex, out[0], "your t"), returned(ex, out[1], "your `significant`")


def _check_t(ex: str, t: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    ref = st.ttest_rel(a, b, axis=0)
    n, width = a.shape
    if t.shape != ref.statistic.shape:
        if t.shape == (n,):
            raise Mistake(ex, f"you returned {n} t values, one per SENTENCE PAIR: test along axis=0, so that each "
                              f"neuron (column) gets its own t ({width} of them)")
        raise Mistake(ex, f"t has shape {t.shape}; expected one t per neuron, {ref.statistic.shape}")
    if close(t, ref.statistic, 1e-6):
        return
    d = a - b
    diagnose(ex, t, {
        "your t has the opposite sign: the kit's convention is t = mean(a - b) / (sd / sqrt(n)), so t > 0 "
        "marks the neurons more active for a (him). Call ttest_rel(acts_a, acts_b), a first": -ref.statistic,
        "that is the independent-samples t-test (ttest_ind); the sentences come in matched pairs, so use "
        "the paired test (ttest_rel), which removes what the two sentences of a pair share":
            st.ttest_ind(a, b, axis=0).statistic,
        "your first result holds the p-values; t is the test's .statistic (its .pvalue goes into the mask)":
            ref.pvalue,
        "close, but your standard deviation uses ddof=0 (np.std's default); the t-test uses the sample sd, "
        "np.std(d, axis=0, ddof=1)": d.mean(0) / (d.std(0) / np.sqrt(n)),
    }, tol=1e-6)
    raise Mistake(ex, "your t differs from scipy.stats.ttest_rel(acts_a, acts_b, axis=0).statistic")


def _check_mask(ex: str, sig, t: np.ndarray, p: np.ndarray, q: float) -> None:
    """Raise Mistake unless `sig` is the BH rejection mask of p at q; name what it is instead."""
    sig = np.asarray(sig.detach().cpu() if isinstance(sig, torch.Tensor) else sig)
    rejected, p_adj = fdrcorrection(p, alpha=q)
    if sig.shape != t.shape:
        raise Mistake(ex, f"`significant` has shape {sig.shape}; it must hold one True/False per neuron, {t.shape}")
    if sig.dtype != bool:
        if np.issubdtype(sig.dtype, np.number) and close(sig, p_adj, 1e-9):
            raise Mistake(ex, "your `significant` is the BH-adjusted p-values, not the rejection mask: "
                              "fdrcorrection returns (rejected, p_adjusted); take [0]")
        if np.issubdtype(sig.dtype, np.number) and close(sig, p, 1e-9):
            raise Mistake(ex, "your `significant` holds the p-values; it must be a True/False mask: the BH "
                              "rejection mask, fdrcorrection(p, alpha=q)[0]")
        if np.issubdtype(sig.dtype, np.number) and np.isin(sig, (0, 1)).all():
            raise Mistake(ex, f"your `significant` holds 0s and 1s ({sig.dtype}), not True/False: with numbers, "
                              f"acts[:, mask] picks columns 0 and 1 over and over instead of the neurons that "
                              f"pass. Return a boolean array (dtype bool), e.g. fdrcorrection(p, alpha=q)[0]")
        raise Mistake(ex, f"`significant` must be a boolean array (True/False per neuron), got {sig.dtype}")
    if np.array_equal(sig, rejected):
        return
    diagnose(ex, sig, {
        "your mask is p < q, with no correction: with one test per neuron, about q of the neurons without any "
        "effect pass by chance. Use the BH rejection mask, fdrcorrection(p, alpha=q)[0]": p < q,
        "that is the Benjamini-Yekutieli mask (method='negcorr'); this exercise asks for Benjamini-Hochberg":
            fdrcorrection(p, alpha=q, method="negcorr")[0],
        "that is Bonferroni (p < q / m): it controls the chance of any false positive, stricter than the false "
        "discovery rate that BH controls; use fdrcorrection(p, alpha=q)[0]": p < q / p.size,
        "your mask marks the neurons that do NOT pass: it is inverted": ~rejected,
        "your mask keeps only the neurons with t > 0: `significant` is every neuron that passes, in either "
        "direction (t's sign says which word it prefers)": rejected & (t > 0),
        "your mask keeps only the neurons with t < 0: `significant` is every neuron that passes, in either "
        "direction (t's sign says which word it prefers)": rejected & (t < 0),
    }, tol=0)
    raise Mistake(ex, f"your mask passes {int(sig.sum())} neurons, the BH mask at q={q} passes "
                      f"{int(rejected.sum())}")


def paired_test(fn) -> None:
    """(c) fn(acts_a, acts_b, q) -> (t, significant): paired t of a - b per neuron, and the BH rejection mask."""
    __tracebackhide__ = True
    ex = "(c) paired_test"
    a, b = _ttest_data()
    t, sig = _as_pair(ex, run(ex, fn, a.copy(), b.copy(), 0.05))
    t = as_array(t, ex, "t")
    _check_t(ex, t, a, b)
    p = st.ttest_rel(a, b, axis=0).pvalue
    _check_mask(ex, sig, t, p, 0.05)
    loose = 0.2
    _, sig2 = _as_pair(ex, run(ex, fn, a.copy(), b.copy(), loose))
    sig2 = np.asarray(sig2.detach().cpu() if isinstance(sig2, torch.Tensor) else sig2)
    if sig2.shape == t.shape and np.array_equal(sig2, fdrcorrection(p, alpha=0.05)[0]):
        raise Mistake(ex, f"right at q=0.05, but with q={loose} your mask is still the one for 0.05: you ignored "
                          f"q. Pass it on: fdrcorrection(p, alpha=q)")
    _check_mask(ex, sig2, t, p, loose)
    bh = fdrcorrection(p, alpha=0.05)[0]
    return passed(ex, f"paired t (a - b) and the BH mask: {int(bh.sum())} of {bh.size} neurons pass at q=0.05 "
                      f"({int(fdrcorrection(p, alpha=loose)[0].sum())} at q={loose}), where uncorrected p < 0.05 "
                      f"would pass {int((p < 0.05).sum())}")
