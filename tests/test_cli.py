"""The two command lines: a bad argument is a usage error (exit 2, no traceback) naming the argument,
raised before the slow part (the contrast and the output paths before the model is loaded)."""
from __future__ import annotations

import warnings

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


def _unwritable_folder(tmp_path):
    """A folder that exists but takes no new file, even for root (who ignores a read-only mode bit)."""
    import os
    if os.geteuid() != 0:
        d = tmp_path / "read_only"
        d.mkdir()
        d.chmod(0o555)
        return d
    if os.path.isdir("/proc/self"):
        return "/proc/self"
    pytest.skip("no folder here that root cannot write to")


def test_an_output_folder_that_takes_no_file_fails_before_the_model(no_model, capsys, tmp_path):
    """--out and --figures are tried by writing a probe file (then removing it), not only by creating the
    folder: a read-only place is a usage error before any model is loaded, and a writable one is left as it was."""
    ro = _unwritable_folder(tmp_path)
    err = _usage_error(R.main, ["--out", f"{ro}/report.html"], capsys)
    assert f"--out {ro}/report.html: cannot write a file there" not in err     # the folder is named, not the file
    assert f"--out {ro}: cannot write a file there" in err, err
    assert f"--figures {ro}: cannot write a file there" in _usage_error(L.main, ["--figures", str(ro)], capsys)
    ok = tmp_path / "figs"
    ok.mkdir()
    assert "--contrast: No contrast file" in _usage_error(L.main, ["--figures", str(ok), "--contrast", "nope"], capsys)
    assert list(ok.iterdir()) == []                                             # no probe file left behind


DEMO = "test\t[MASK] called, and she answered.\the\ntest\tHe called, and [MASK] answered.\tshe\n"


def _contrast(tmp_path, pairs: int, tests: str) -> str:
    men = ["The boy", "My uncle", "The king", "Her father", "The waiter"]
    body = "#: name = mine\n#: a = he\n#: b = she\n" + "".join(
        f"pair\t{m} said he was tired.\t{m} said she was tired.\n" for m in men[:pairs]) + tests
    (tmp_path / "mine.tsv").write_text(body, encoding="utf-8")
    return str(tmp_path / "mine.tsv")


def test_a_contrast_with_one_pair_is_a_usage_error(no_model, capsys, tmp_path):
    path = _contrast(tmp_path, 1, DEMO)
    err = _usage_error(L.main, ["--contrast", path], capsys)
    assert f"--contrast {path}: 1 pair; the paired t-test of Part 1 needs at least 2" in err, err


def test_demo_lines_that_differ_only_in_case_are_one_demo_sentence(no_model, capsys, tmp_path):
    """"[MASK] called, ..." (he) and "He called, and [MASK] ..." (she) fill in to the same sentence ("he" at the
    start is "He"): the CLI takes the contrast (and goes on to load the model), Part 2 has its demo sentence."""
    from helpers.lecture import two_slot_items
    path = _contrast(tmp_path, 3, DEMO)
    with pytest.raises(AssertionError, match="the model was loaded"):
        L.main(["--contrast", path])
    (clean, slots), = two_slot_items(path)
    assert clean == "He called, and she answered." and [w for _, w in slots] == ["he", "she"]


def test_method_is_taken_in_any_case(no_model, capsys, tmp_path):
    """--method BH / By as the library takes them (stored lower case); a wrong one still names the choices."""
    import argparse
    ap = argparse.ArgumentParser()
    L.add_lecture_args(ap)
    assert ap.parse_args(["--method", "BH"]).method == "bh" and ap.parse_args(["--method", "By"]).method == "by"
    with pytest.raises(AssertionError, match="the model was loaded"):       # the arguments were accepted
        R.main(["--method", "BY", "--mode", "Mean", "--out", str(tmp_path / "r.html")])
    assert "invalid choice: 'holm'" in _usage_error(L.main, ["--method", "Holm"], capsys)


def test_a_model_in_train_mode_is_named_by_the_cli(monkeypatch, capsys, tokenizer):
    """The kit measures in eval mode (so the numbers stand) but says that the model was left in train mode."""
    from conftest import tiny_bert

    from helpers.lecture import train_mode_note
    model = tiny_bert(seed=4).train()
    monkeypatch.setattr(L, "load_mlm", lambda name=None: (model, tokenizer))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.main([])
    out = capsys.readouterr().out
    assert "tiny-bert is in train mode (dropout on)" in out and "call model.eval()" in out
    assert out.count("is in train mode") == 1 and not [w for w in caught if "train mode" in str(w.message)]
    assert model.training                                                       # the mode is left as it was
    assert train_mode_note(model.eval()) == ""
