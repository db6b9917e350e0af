"""The two command lines: a bad argument is a usage error (exit 2, no traceback) naming the argument,
raised before the slow part (the contrast and the output paths before the model is loaded)."""
from __future__ import annotations

import pytest

import helpers.cli as L
import helpers.report as R


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to load a model fails the test: these errors must come first."""
    def boom(*a, **k):
        raise AssertionError("the model was loaded before the bad argument was reported")
    monkeypatch.setattr(L, "load_mlm", boom)


def _usage_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, says", [
    (["--q", "1.5"], "--q: .*strictly between 0 and 1"),
    (["--q", "nan"], "--q: .*strictly between 0 and 1"),
    (["--layer", "-1"], "--layer: must be 0 or more"),
    (["--layer", "abc"], "--layer: expected a whole number"),
    (["--contrast", "nope"], "--contrast: No contrast file 'nope'"),
    (["--contrast", "he_she"], "--contrast he_she: Parts 2 and 3 need a demo sentence .*Shipped sets that have one: "
                               "him_her"),
])
def test_lecture_cli_rejects_bad_arguments_before_loading(no_model, capsys, argv, says):
    import re
    err = _usage_error(L.main, argv, capsys)
    assert err.startswith("usage: python -m helpers ") and re.search(says, err), err


def test_output_paths_are_checked_first(no_model, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert "--figures" in _usage_error(L.main, ["--figures", str(blocker)], capsys)
    assert "cannot create it" in _usage_error(L.main, ["--figures", str(blocker / "sub")], capsys)
    err = _usage_error(R.main, ["--out", str(tmp_path)], capsys)
    assert err.startswith("usage: python -m helpers.report ") and "is a folder" in err
    assert "a_file: exists and is not a folder" in _usage_error(R.main, ["--out", str(blocker / "r.html")], capsys)
    assert "--draws: must be 1 or more" in _usage_error(R.main, ["--draws", "0"], capsys)


def test_layer_out_of_range_is_named_after_loading(monkeypatch, capsys, tiny_model, tokenizer):
    monkeypatch.setattr(L, "load_mlm", lambda name=None: (tiny_model, tokenizer))
    err = _usage_error(L.main, ["--layer", "7"], capsys)
    assert "--layer: layer 7 is out of range" in err and "0..2" in err


def test_an_unloadable_model_is_a_usage_error(monkeypatch, capsys):
    from helpers.loading import ModelUnavailable

    def unavailable(name=None):
        raise ModelUnavailable(f"Cannot load {name!r}: it is not a local folder")
    monkeypatch.setattr(L, "load_mlm", unavailable)
    assert "--model: Cannot load 'no/such'" in _usage_error(L.main, ["--model", "no/such"], capsys)
