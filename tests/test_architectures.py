"""Any encoder: the MLP-site resolver, capture, ablation and predictions on every supported architecture.

Each architecture is a tiny randomly initialised model built from a config, with a
tokenizer built offline: the bert-base-uncased WordPiece vocabulary (shipped with the
stand-in's base package) for BERT, DistilBERT and ELECTRA; a small byte-level BPE
trained here on a few sentences for RoBERTa (with a <mask> token) and GPT-2.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.capture import mlp_activations
from helpers.hooks import Trace, get_module, hooks_attached
from helpers.lecture import part1
from helpers.lesion import ablate_neurons
from helpers.readout import masked_logits, word_ids
from helpers.loading import _base_dir
from helpers.arch import (MLP_SITES, block_module_name, check_layer, is_causal, mlp_module_name, n_layers,
                            n_neurons)
from helpers.stimuli import StimulusError, target_positions

ARCHS = ["bert", "roberta", "distilbert", "electra", "gpt2"]
WIDTH = 48
SENTENCES = ["The dog followed him all the way home.", "The dog followed her all the way home.",
             "Nobody told him about the change of plans.", "Nobody told her about the change of plans.",
             "Can you call him later tonight?", "Can you call her later tonight?",
             "I lent him my umbrella.", "I lent her my umbrella."]
MASKED = ["The dog followed [MASK] all the way home.", "Nobody told [MASK] about the plans."]


def _bpe_tokenizer(kind: str):
    """A byte-level BPE trained on SENTENCES: RoBERTa-style (<s> <pad> </s> <unk> <mask>) or GPT-2-style."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if kind == "roberta" else ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 5, trainer)
    if kind == "roberta":
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])  # " <mask>" eats its space
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")), trim_offsets=True)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                       cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


def build(kind: str, seed: int = 0):
    """(model, tokenizer) for one architecture: 2 layers, hidden 32, MLP width 48, eval mode."""
    import transformers as T

    small = dict(num_attention_heads=2, max_position_embeddings=128)
    if kind in ("bert", "distilbert", "electra"):
        tok_cls = {"bert": T.BertTokenizerFast, "distilbert": T.DistilBertTokenizerFast,
                   "electra": T.ElectraTokenizerFast}[kind]
        tok = tok_cls.from_pretrained(_base_dir())
    else:
        tok = _bpe_tokenizer(kind)
    torch.manual_seed(seed)
    if kind == "bert":
        model = T.BertForMaskedLM(T.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                               intermediate_size=WIDTH, **small))
    elif kind == "electra":
        model = T.ElectraForMaskedLM(T.ElectraConfig(vocab_size=len(tok), embedding_size=16, hidden_size=32,
                                                     num_hidden_layers=2, intermediate_size=WIDTH, **small))
    elif kind == "distilbert":
        model = T.DistilBertForMaskedLM(T.DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2,
                                                           hidden_dim=WIDTH, max_position_embeddings=128))
    elif kind == "roberta":
        model = T.RobertaForMaskedLM(T.RobertaConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, intermediate_size=WIDTH, num_attention_heads=2,
            max_position_embeddings=130, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id))
    else:
        eot = tok.eos_token_id
        model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_inner=WIDTH,
                                               n_positions=128, bos_token_id=eot, eos_token_id=eot))
    model.eval()
    model.name_or_path = f"tiny-{kind}"
    return model, tok


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return (request.param, *build(request.param))


def _act_fn(model):
    from transformers.activations import ACT2FN

    cfg = model.config
    name = getattr(cfg, "activation_function", None) or getattr(cfg, "activation", None) or cfg.hidden_act
    return ACT2FN[name]


def test_resolver_names_real_modules(arch):
    kind, model, _ = arch
    assert model.config.model_type == kind and kind in MLP_SITES
    assert n_layers(model) == 2 and n_neurons(model, 1) == WIDTH
    assert is_causal(model) == (kind == "gpt2")
    for layer in range(2):
        get_module(model, block_module_name(model, layer))
        pre = get_module(model, mlp_module_name(model, layer, "pre"))
        post = get_module(model, mlp_module_name(model, layer, "post"))
        assert isinstance(pre, torch.nn.Module) and isinstance(post, torch.nn.Module) and pre is not post
    with pytest.raises(ValueError, match=r"0\.\.1"):
        check_layer(model, 2)


def test_capture_shapes_and_values(arch):
    kind, model, tok = arch
    words = ["him", "her"] * (len(SENTENCES) // 2)
    pre = mlp_activations(model, tok, SENTENCES, words, [0, 1], site="pre", batch_size=3)
    post = mlp_activations(model, tok, SENTENCES, words, [0, 1], site="post", batch_size=3)
    assert hooks_attached(model) == []
    for layer in (0, 1):
        assert pre[layer].shape == post[layer].shape == (len(SENTENCES), WIDTH)
        # post is the nonlinearity applied to pre: the two sites straddle the activation function
        np.testing.assert_allclose(post[layer], _act_fn(model)(torch.from_numpy(pre[layer])).numpy(),
                                   rtol=1e-5, atol=1e-6)
    # the captured row is the target word's token, whatever the batching and padding
    pos = target_positions(tok, SENTENCES[4:5], "him")[0]
    with Trace(model, mlp_module_name(model, 1, "pre")) as t, torch.no_grad():
        model(**tok(SENTENCES[4:5], return_tensors="pt"))
    np.testing.assert_allclose(pre[1][4], t.output[0, pos].numpy(), rtol=1e-5, atol=1e-6)


def test_ablation_takes_effect_and_empty_set_is_a_noop(arch, capsys):
    kind, model, tok = arch
    texts = MASKED
    before = masked_logits(model, tok, texts, ["him", "her"])
    neurons = np.arange(0, WIDTH, 2)
    with ablate_neurons(model, 0, neurons), Trace(model, mlp_module_name(model, 0, "post")) as t:
        after = masked_logits(model, tok, texts, ["him", "her"])
    assert np.abs(after - before).max() > 1e-6, "zeroing half the layer-0 neurons changed nothing"
    assert torch.all(t.output[..., neurons] == 0) and torch.any(t.output[..., 1::2] != 0)
    with ablate_neurons(model, 0, []):
        same = masked_logits(model, tok, texts, ["him", "her"])
    assert np.array_equal(same, before)
    assert "empty, so nothing is ablated" in capsys.readouterr().out
    assert hooks_attached(model) == []


def test_masked_logits(arch):
    kind, model, tok = arch
    ids = word_ids(tok, ["him", "her"])
    out = masked_logits(model, tok, MASKED, ["him", "her"])
    assert out.shape == (2, 1, 2) and np.isfinite(out).all()
    with torch.no_grad():
        for i, text in enumerate(MASKED):
            if is_causal(model):   # GPT-2: the next token after the text up to its [MASK]
                enc = tok(text.split("[MASK]")[0].rstrip(), return_tensors="pt")
                want = model(**enc).logits[0, -1, ids]
            else:                  # [MASK] is written as the tokenizer's own mask token (RoBERTa: <mask>)
                enc = tok(text.replace("[MASK]", tok.mask_token), return_tensors="pt")
                at = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
                want = model(**enc).logits[0, at, ids]
            np.testing.assert_allclose(out[i, 0], want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(StimulusError, match="no mask|has no|exactly one"):
        masked_logits(model, tok, ["No mask in this text."], ["him", "her"])
    assert hooks_attached(model) == []


def test_hooks_removed_after_an_error_in_ablation(arch):
    kind, model, tok = arch
    with pytest.raises(RuntimeError, match="boom"):
        with ablate_neurons(model, 1, [0, 1, 2]):
            masked_logits(model, tok, MASKED[:1], ["him"])
            raise RuntimeError("boom")
    assert hooks_attached(model) == []


def test_part1_runs_on_any_encoder(arch, tmp_path):
    kind, model, tok = arch
    f = tmp_path / "mini.tsv"
    lines = ["#: a = him", "#: b = her"] + [f"pair\t{a}\t{b}" for a, b in zip(SENTENCES[::2], SENTENCES[1::2])]
    f.write_text("\n".join(lines) + "\n")
    p1 = part1(model, tok, str(f), layer=1)
    assert p1.acts_a.shape == p1.acts_b.shape == (4, WIDTH)
    assert p1.test.t.shape == (WIDTH,) and "layer 1" in p1.summary()
    assert hooks_attached(model) == []


def test_mask_target_is_the_tokenizers_mask_token_on_roberta():
    """Selection at a [MASK] (controls.mask_selection) reads the <mask> token, not the last piece of '[MASK]'."""
    model, tok = build("roberta")
    texts = MASKED
    want = [p[0] for p in __import__("helpers.stimuli", fromlist=["mask_positions"]).mask_positions(tok, texts)]
    assert target_positions(tok, texts, "[MASK]") == want
    got = mlp_activations(model, tok, texts, "[MASK]", 0, site="pre", verbose=False)[0]
    enc = tok([t.replace("[MASK]", "<mask>") for t in texts], return_tensors="pt", padding=True)
    with Trace(model, mlp_module_name(model, 0, "pre")) as t, torch.no_grad():
        model(**enc)
    np.testing.assert_allclose(got, t.output[torch.arange(len(texts)), want].numpy(), atol=1e-5)
