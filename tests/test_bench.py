"""bench/bench.py's arithmetic line: its FLOP formulas agree with torch's FLOP counter.

The bench prints how many FLOPs an exact null needs per set next to the bare forward's; these tests
count the same runs with torch.utils.flop_counter on a small random BERT (no timing asserted).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers.fast import ablation_logit_diffs
from helpers.stimuli import target_positions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("kit_bench", ROOT / "bench" / "bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def small():
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                      intermediate_size=256)).eval()


def _stimuli(bench, tokenizer, n=40):
    _, sents, words = bench.stimuli()
    sents, words = sents[:n // 2] + sents[-n // 2:], words[:n // 2] + words[-n // 2:]
    return sents, target_positions(tokenizer, sents, words)


def test_bare_forward_flops_match_the_counter(bench, small, tokenizer):
    sents, _ = _stimuli(bench, tokenizer)
    with FlopCounterMode(display=False) as fc:
        bench.bare_forward(small, tokenizer, sents)
    counted = fc.get_total_flops()
    assert bench.flop_counts(small, tokenizer, sents, 1)["bare"] == pytest.approx(counted, rel=0.02)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_null_floor_is_below_what_the_fast_path_does(bench, small, tokenizer, layer):
    """The per-set floor is a floor: the fast path's counted FLOPs per set are at least it, and not
    far above it (the smaller products it leaves out)."""
    sents, pos = _stimuli(bench, tokenizer)
    rng = np.random.default_rng(0)

    def count(k):
        sets = [rng.choice(256, 100, replace=False) for _ in range(k)]
        with FlopCounterMode(display=False) as fc:
            ablation_logit_diffs(small, tokenizer, sents, pos, layer, sets, "her", "him")
        return fc.get_total_flops()

    per_set = (count(8) - count(4)) / 4                  # the one cached pass cancels out
    floor = bench.flop_counts(small, tokenizer, sents, layer)
    assert floor["per_set"] <= per_set <= 2 * floor["per_set"]
    assert (floor["every"] > 0) == (layer + 1 < 3)       # every token only when a block lies between


def test_breakdown_times_the_every_token_product_once_per_token(bench, small, tokenizer):
    """bench.null_breakdown hooks block L+1's MLP output projection: per set, the fast path runs it on
    exactly the real tokens (the floor's `every` term, no padding, no token twice); hooks are removed."""
    sents, pos = _stimuli(bench, tokenizer)
    rng = np.random.default_rng(1)
    sets = np.stack([rng.choice(256, 100, replace=False) for _ in range(6)])
    null = lambda s: ablation_logit_diffs(small, tokenizer, sents, pos, 1, s, "her", "him")  # noqa: E731
    part = bench.null_breakdown(small, null, sets, 1)
    assert part["sets"] == 6
    assert part["every_flops"] == bench.flop_counts(small, tokenizer, sents, 1)["every"]
    assert part["every_ms_per_set"] > 0 and part["every_gflops"] > 0
    dense = small.bert.encoder.layer[2].output.dense
    assert not dense._forward_hooks and not dense._forward_pre_hooks
    # at L = 2 block L+1 is the last one: it runs at the read token only, nothing to break down
    assert bench.null_breakdown(small, null, sets, 2) is None


def test_peak_rate_is_a_rate(bench):
    assert 0 < bench.peak_rate(64, 256, rows=32, repeats=2) < 1e5
