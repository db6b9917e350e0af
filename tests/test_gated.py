"""Gated MLPs (issue 25, item 2): Llama-style blocks compute down_proj(act(gate(x)) * up(x)), and neuron j is
coordinate j of down_proj's input. Every dense gated causal LM family this transformers ships (the ones a tiny
config builds: FAMILIES, found by building each *ForCausalLM type from one small config) is tested on a tiny
random model: capture equals a plain pre-hook on down_proj, zeroing neuron j equals zeroing column j of
down_proj's weight, mean / resample ablation write the coordinate, and no hook is left. A tiny Llama then runs
Parts 1-3, the fast null's fallback and the command line through the same code as BERT."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from helpers import fast
from helpers.arch import is_causal, is_gated, mlp_module_name, mlp_site, n_neurons
from helpers.capture import mlp_activations
from helpers.fast import ablation_logit_diffs, slow_reason, supports_fast
from helpers.hooks import Trace, get_module, hooks_attached
from helpers.lecture import part1, part2, part3
from helpers.lesion import ablate_neurons
from helpers.readout import word_ids
from helpers.stimuli import target_positions
from test_architectures import SENTENCES, _bpe_tokenizer
from test_causal import NOTE, write_contrast

# dense gated *ForCausalLM types of transformers 5.25 that build from SMALL (+ EXTRA); MoE layers are an error (see
# below); Dory, a looped model that runs its recurrent layers several times per pass, is left out (see the README)
FAMILIES = ["bailing_hybrid", "beam", "bitnet", "cohere", "cohere2", "cwm", "deepseek_v3", "diffllama", "doge",
            "ernie4_5", "exaone", "exaone4", "falcon_h1", "flint", "gemma", "gemma2", "gemma3_text",
            "gemma4_unified_text", "glm", "glm4", "granite", "granite_swa", "helium", "hunyuan_v1_dense",
            "hyperclovax", "internlm3", "iquestcoder", "llama", "minicpm3", "ministral", "ministral3", "mistral",
            "olmo", "olmo2", "olmo3", "olmo_hybrid", "phi3", "qwen2", "qwen3", "qwen3_5_text", "seed_oss", "smollm3",
            "stablelm", "vaultgemma", "youtu"]
WIDTH = 48
SMALL = dict(hidden_size=32, intermediate_size=WIDTH, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
             head_dim=16, max_position_embeddings=128)
MLA = dict(head_dim=8, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, kv_lora_rank=16, q_lora_rank=16)
EXTRA = {    # families whose defaults do not shrink with SMALL: latent attention, hybrid layers, dense first layers
    "deepseek_v3": dict(MLA, first_k_dense_replace=2, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1,
                        moe_intermediate_size=16),
    "youtu": MLA,
    "falcon_h1": dict(mamba_d_ssm=32, mamba_n_heads=2, mamba_d_head=16, mamba_d_state=8, mamba_chunk_size=16),
    "qwen3_5_text": dict(layer_types=["linear_attention", "full_attention"], linear_num_key_heads=2,
                         linear_num_value_heads=2, linear_key_head_dim=8, linear_value_head_dim=8),
    "bailing_hybrid": dict(MLA, q_lora_rank=None, layer_types=["linear_attention", "full_attention"],
                           mlp_layer_types=["dense", "dense"], first_k_dense_replace=2, linear_num_heads=2,
                           linear_head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                           n_group=1, topk_group=1)}
WORDS = ["him", "her"] * (len(SENTENCES) // 2)


@pytest.fixture(scope="module")
def bpe():
    return _bpe_tokenizer("gpt2")


def build_gated(kind: str, tok, seed: int = 0):
    """A tiny random causal LM of family `kind` (2 layers, hidden 32, 48 neurons), in eval mode; skipped where
    this transformers does not ship the family."""
    import transformers as T
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if kind not in CONFIG_MAPPING_NAMES:
        pytest.skip(f"transformers {T.__version__} has no {kind}")
    eos = tok.eos_token_id
    cfg = T.AutoConfig.for_model(kind, vocab_size=len(tok), pad_token_id=eos, bos_token_id=eos, eos_token_id=eos,
                                 **{**SMALL, **EXTRA.get(kind, {})})
    torch.manual_seed(seed)
    model = T.AutoModelForCausalLM.from_config(cfg).eval()
    model.name_or_path = f"tiny-{kind}"
    return model


def _enc(tok, texts):
    return tok(texts[0], return_tensors="pt")      # no pad token: one text per pass


def _logits(model, enc):
    with torch.no_grad():
        return model(**enc).logits


def _plain_input(model, layer, enc):
    """down_proj's input at `layer`, read with a plain forward pre-hook: [seq, width]."""
    seen = {}
    down = get_module(model, mlp_site(model, layer).name)
    handle = down.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach().clone()))
    try:
        _logits(model, enc)
    finally:
        handle.remove()
    return seen["x"][0]


@pytest.mark.parametrize("kind", FAMILIES)
def test_a_gated_family_is_read_and_lesioned_at_down_projs_input(kind, bpe):
    model = build_gated(kind, bpe)
    down = model.model.layers[1].get_submodule(mlp_site(model, 1).name.split("layers.1.")[1])
    assert is_gated(model) and is_causal(model) and not supports_fast(model)
    assert n_neurons(model, 1) == model.config.intermediate_size == WIDTH == down.in_features
    for site in ("pre", "post"):
        assert mlp_site(model, 1, site).on == "input" and mlp_module_name(model, 1, site).endswith("down_proj")

    # capture: both layers, batched by length, equal a plain pre-hook at each sentence's target word
    acts = mlp_activations(model, bpe, SENTENCES, WORDS, [0, 1], verbose=False, batch_size=3)
    pos = target_positions(bpe, SENTENCES, WORDS)
    for i in (0, 5):
        enc = _enc(bpe, [SENTENCES[i]])
        for layer in (0, 1):
            np.testing.assert_allclose(acts[layer][i], _plain_input(model, layer, enc)[pos[i]].numpy(),
                                       rtol=1e-4, atol=1e-5)

    # zero neuron j everywhere == the model with column j of down_proj's weight zeroed
    enc = _enc(bpe, [SENTENCES[2]])
    clean = _logits(model, enc)
    j = [3, 17]
    with ablate_neurons(model, 1, j, verbose=False):
        ablated = _logits(model, enc)
    saved = down.weight.detach().clone()
    with torch.no_grad():
        down.weight[:, j] = 0
    try:
        torch.testing.assert_close(ablated, _logits(model, enc), rtol=1e-4, atol=1e-5)
    finally:
        with torch.no_grad():
            down.weight.copy_(saved)
    assert not torch.allclose(ablated, clean)

    # mean (one token) and resample (every token): the coordinate is replaced, nothing else
    x0 = _plain_input(model, 1, enc)
    p = int(x0.shape[0]) - 2
    mean = torch.randn(WIDTH)
    with ablate_neurons(model, 1, j, same_positions=p, mode="mean", values=mean, verbose=False), \
            Trace(model, mlp_site(model, 1).name, on="input") as t:
        _logits(model, enc)
    x = t.input[0]
    torch.testing.assert_close(x[p, j], mean[j])
    rest = torch.ones_like(x, dtype=torch.bool)
    rest[p, j] = False
    torch.testing.assert_close(x[rest], x0[rest])
    pool = torch.randn(5, WIDTH)
    with ablate_neurons(model, 1, j, mode="resample", values=pool, verbose=False), \
            Trace(model, mlp_site(model, 1).name, on="input") as t:
        _logits(model, enc)
    for row in t.input[0][:, j]:
        assert any(torch.allclose(row, pool[k, j]) for k in range(5))
    assert hooks_attached(model) == []
    torch.testing.assert_close(_logits(model, enc), clean)


def test_a_mixture_of_experts_layer_is_an_error_naming_it(bpe):
    """Jamba's layer 1 is a mixture of experts (each expert has its own down_proj): an error that names it."""
    model = build_gated("jamba", bpe)
    assert mlp_site(model, 0).on == "input"
    with pytest.raises(NotImplementedError, match="layer 1 of .*mixture-of-experts"):
        mlp_activations(model, bpe, SENTENCES[:2], "him", 1, verbose=False)


@pytest.fixture(scope="module")
def llama(bpe):
    return build_gated("llama", bpe), bpe


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_contrast(tmp_path_factory.mktemp("contrast"))


def test_parts_1_to_3_run_on_a_tiny_llama(llama, mini):
    """The lecture on a gated causal LM: Part 1 names the site, Part 2 says the right context is dropped, Part 3's
    lesion equals a plain pre-hook zeroing the neurons at the last token of the text before the slot; the same
    numbers with a pad token (batched, right-padded) as without (one text per pass)."""
    model, tok = llama
    p1 = part1(model, tok, mini, layer=1)
    p2 = part2(model, tok, mini)
    p3 = part3(model, tok, p1, p2)
    assert p1.acts_a.shape == (8, WIDTH) and "layer 1, down_proj input," in p1.summary()
    assert p2.causal and p2.summary().count(NOTE) == 1
    assert all(p1.neurons(w).any() for w in p2.words), p1.summary()
    ids = word_ids(tok, list(p2.words))
    for j, w in enumerate(p2.slot_words):
        prefix = p2.texts[1 + j].split("[MASK]")[0].rstrip()
        idx = torch.as_tensor(np.flatnonzero(p1.neurons(w)))

        def zero_last(module, args):
            x = args[0].clone()
            x[:, -1, idx] = 0
            return (x,)
        handle = get_module(model, mlp_site(model, 1).name).register_forward_pre_hook(zero_last)
        try:
            want = _logits(model, tok(prefix, return_tensors="pt"))[0, -1, ids]
        finally:
            handle.remove()
        np.testing.assert_allclose(p3.logits[1 + j, j], want.numpy(), atol=1e-5)
    assert np.array_equal(p3.delta[0], np.zeros((2, 2)))
    p3m = part3(model, tok, p1, p2, mode="mean")
    assert np.isfinite(p3m.logits).all() and "mean-ablated" in p3m.summary()

    tok.pad_token = tok.eos_token                   # as Llama users often do: now the kit batches, padded right
    try:
        b1, b2 = part1(model, tok, mini, layer=1), part2(model, tok, mini)
        np.testing.assert_allclose(b1.acts_a, p1.acts_a, atol=1e-5)
        np.testing.assert_allclose(b2.logits, p2.logits, atol=1e-5)
        np.testing.assert_allclose(part3(model, tok, b1, b2).logits, p3.logits, atol=1e-5)
    finally:
        tok.pad_token = None
    assert hooks_attached(model) == []


def test_the_fast_null_falls_back_to_the_exact_slow_path_once(llama):
    model, tok = llama
    texts = ["The dog followed him all the way", "Nobody told her about"]
    pos = [len(tok(t)["input_ids"]) - 1 for t in texts]
    sets = [[1, 2, 3], [4, 5]]
    fast._SAID.clear()
    assert "gated MLPs" in slow_reason(model)
    with pytest.warns(UserWarning, match="fast null does not apply to this model because it is a llama model with "
                                         "gated MLPs"):
        got = ablation_logit_diffs(model, tok, texts, pos, 1, sets, "him", "her")
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # said once
        again = ablation_logit_diffs(model, tok, texts, pos, 1, sets, "him", "her", mode="mean",
                                     values=np.zeros(WIDTH))
    np.testing.assert_allclose(again, got, atol=1e-5)      # mean of zeros == zero ablation
    ids = word_ids(tok, ["him", "her"])
    for k, s in enumerate(sets):
        for i, (t, p) in enumerate(zip(texts, pos)):
            with ablate_neurons(model, 1, s, positions=[[p]], verbose=False):
                lg = _logits(model, tok(t, return_tensors="pt"))[0, p]
            assert got[k, i] == pytest.approx(float(lg[ids[0]] - lg[ids[1]]), abs=1e-5)
    assert hooks_attached(model) == []


def test_the_cli_runs_a_saved_tiny_llama(llama, mini, tmp_path, capsys):
    """python -m helpers --model <a tiny Llama folder>: loaded as a causal LM (there is no Llama masked LM)."""
    from helpers.cli import main
    from helpers.loading import load_mlm
    model, tok = llama
    folder = tmp_path / "tiny-llama"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    loaded, _ = load_mlm(str(folder), verbose=False, device="cpu")
    assert type(loaded).__name__ == "LlamaForCausalLM"
    main(["--model", str(folder), "--contrast", mini])
    out = capsys.readouterr().out
    assert "down_proj input" in out and out.count(NOTE) == 1 and "Part 3 |" in out
