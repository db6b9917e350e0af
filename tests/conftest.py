"""Shared fixtures: tiny randomly initialised models (no download) and the real stand-in."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(int(os.environ.get("KIT_TEST_THREADS", "2")))


def bert_vocab_dir() -> Path:
    """The bert-base-uncased WordPiece vocabulary shipped in the stand-in's base package."""
    from helpers.loading import _base_dir
    return _base_dir()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bert_vocab_dir())


def tiny_bert(seed: int = 0, layers: int = 3, width: int = 48):
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=width, max_position_embeddings=128)
    m = BertForMaskedLM(cfg).eval()
    m.name_or_path = "tiny-bert"
    return m


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_bert()


@pytest.fixture(scope="session")
def standin():
    from helpers.loading import load_mlm
    return load_mlm("stand-in", verbose=False)
