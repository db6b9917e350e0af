"""The stand-in recipe's building blocks (scripts/standin/): masking and the stage-2 alignment loss."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "standin"))
import checkpoint  # noqa: E402
from align import alignment_loss  # noqa: E402
from train import PRONOUNS, mask_batch  # noqa: E402


def test_checkpoint_round_trip_resumes_training_exactly(tmp_path):
    """Checkpoints are safetensors + JSON (no pickle); model, meta and AdamW state come back, and one more
    step from the loaded state equals one more step from the live one."""
    torch.manual_seed(0)

    def net():
        m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 4))
        m[1].weight = torch.nn.Parameter(m[0].weight.T.clone())       # an independent copy, stored as one
        return m

    def step(m, opt):
        loss = m(torch.ones(2, 4)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    m = net()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    step(m, opt)
    path = checkpoint.save(tmp_path / "state.safetensors", m.state_dict(), {"step": 1, "scores": {"top1": 0.5}}, opt)
    assert path.read_bytes()[:8] != b"\x80\x02" and b"pickle" not in path.read_bytes()
    state, meta, opt_state = checkpoint.load(path)
    assert meta == {"step": 1, "scores": {"top1": 0.5}}
    assert state.keys() == m.state_dict().keys()
    m2 = net()
    m2.load_state_dict(state)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=0.1)
    opt2.load_state_dict(opt_state)
    step(m, opt)
    step(m2, opt2)
    for (k, v), v2 in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v, v2), k
    assert checkpoint.load(checkpoint.save(tmp_path / "m.safetensors", m.state_dict(), {"step": 2}))[2] is None


def test_alignment_loss_is_zero_when_the_mask_state_equals_the_word_state():
    a = {3: torch.randn(2, 5, 8), 4: torch.randn(2, 5, 8)}
    where = torch.zeros(2, 5, dtype=torch.bool)
    where[0, 1] = where[1, 3] = True
    assert alignment_loss(a, {k: v.clone() for k, v in a.items()}, where) == 0


def test_alignment_loss_is_relative_and_only_counts_masked_positions():
    vis = {4: torch.ones(1, 4, 6)}
    masked = {4: torch.ones(1, 4, 6)}
    masked[4][0, 0] = 0.0                       # position 0 differs completely ...
    where = torch.tensor([[False, True, True, False]])
    assert alignment_loss(masked, vis, where) == 0          # ... but is not a [MASK] position
    where[0, 0] = True
    # one of three positions is all-wrong: mean squared error 1/3, target mean square 1
    assert alignment_loss(masked, vis, where).item() == pytest.approx(1 / 3)
    # scaling both states leaves the loss unchanged (it is relative to the word's state)
    assert alignment_loss({4: 10 * masked[4]}, {4: 10 * vis[4]}, where).item() == pytest.approx(1 / 3)


def test_alignment_loss_sends_gradient_to_the_masked_state_only():
    vis = {5: torch.randn(1, 3, 4, requires_grad=True)}
    masked = {5: torch.randn(1, 3, 4, requires_grad=True)}
    alignment_loss(masked, vis, torch.ones(1, 3, dtype=torch.bool)).backward()
    assert masked[5].grad is not None and masked[5].grad.abs().sum() > 0
    assert vis[5].grad is None


def test_mask_batch_masks_pronouns_more_often_and_never_special_tokens(tokenizer):
    g = torch.Generator().manual_seed(0)
    ids = tokenizer(["she told him that he would find her book on the table by the door"] * 400,
                    return_tensors="pt")["input_ids"]
    inp, sel, labels = mask_batch(ids, tokenizer, g)
    special = (ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id)
    assert not sel[special].any()
    assert torch.equal(labels, ids[sel])
    pron = torch.isin(ids, torch.tensor(tokenizer.convert_tokens_to_ids(list(PRONOUNS))))
    rate_p, rate_o = sel[pron].float().mean().item(), sel[~pron & ~special].float().mean().item()
    assert 0.45 < rate_p < 0.55 and 0.12 < rate_o < 0.18
    shown = inp[sel]
    assert 0.75 < (shown == tokenizer.mask_token_id).float().mean().item() < 0.85
