"""The course site (issue #27): `scripts/site/build.py` builds it offline from the executed notebooks; its pages
are opened in headless Chromium: the index, a notebook page (Colab buttons, a collapsed hint and solution, a
figure, nothing loaded from outside) and the search page (a word found, on the page that holds it)."""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "site"))
import browser  # noqa: E402
import build  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    done = build.build(out)
    return out, done


def _colab(path: Path) -> str:
    return build.colab_url(nbformat.read(path, as_version=4))


def test_every_notebook_has_a_page_and_nothing_comes_from_outside(site):
    out, done = site
    assert done["pages"] == [f"{p.stem}.html" for p in NOTEBOOKS]
    for f in [*out.glob("*.html"), *out.glob("*.css"), *out.glob("*.js")]:
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"""<(?:script|img|link|iframe)\b[^>]*(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""",
                             text, re.I), f"{f.name} loads something from outside"
        assert "@import" not in text and not re.search(r"url\(\s*['\"]?(?:https?:)?//", text), f.name


def test_the_index_in_chromium_lists_every_notebook_with_its_colab_buttons(site):
    out, _ = site
    dom = browser.dump_dom((out / "index.html").as_uri())
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        assert f'href="{p.stem}.html">{html.escape(build.title_of(nb, p.stem), quote=False)}</a>' in dom
        assert f'href="{_colab(p)}"' in dom                                   # the solution in Colab
        ex = ROOT / "notebooks" / "exercises" / p.name
        if ex.exists():
            assert f'href="{_colab(ex)}"' in dom                              # the exercises in Colab
    assert '<form class="kit-search" action="search.html"' in dom


def test_a_notebook_page_in_chromium_has_colab_buttons_collapsed_hints_and_solutions_and_figures(site):
    out, _ = site
    dom = browser.dump_dom((out / "01_find_neurons.html").as_uri())
    solution = _colab(ROOT / "notebooks" / "01_find_neurons.ipynb")
    exercise = _colab(ROOT / "notebooks" / "exercises" / "01_find_neurons.ipynb")
    assert "/notebooks/exercises/01_find_neurons.ipynb" in exercise and "/notebooks/01_find_neurons.ipynb" in solution
    assert re.search(rf'<a class="kit-colab kit-colab-exercise" href="{re.escape(exercise)}"', dom)
    assert re.search(rf'<a class="kit-colab kit-colab-solution" href="{re.escape(solution)}"', dom)
    hints = re.findall(r"<details( open)?><summary>Hint</summary>", dom)
    assert len(hints) == 3 and not any(hints), "the three hints are there, collapsed"
    sols = re.findall(r'<details class="kit-solution"( open)?><summary>Solution \((\w)\)</summary>', dom)
    assert [s[1] for s in sols] == ["a", "b", "c"] and not any(s[0] for s in sols)
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert 'raise NotImplementedError("Hint: tokenize with return_offsets_mapping=True' in text   # the stub
    assert "inside = [i for i, (s, e) in enumerate(spans)" in text            # and, collapsed, the solution
    assert "### BEGIN SOLUTION" not in text
    assert re.search(r'<img [^>]*src="data:image/png;base64,', dom), "figures are embedded"
    assert "✓ (a) target_position: right on 6 sentences" in dom                  # the executed outputs
    assert "https://github.com/mech-interp-course/mlp-lesion-kit/blob/main/docs/exercises.md" in dom
    try:
        import latex2mathml  # noqa: F401
        assert "<math" in dom and "\\sqrt{n}" not in dom, "math as MathML"
    except ImportError:
        assert "\\sqrt{n}" in dom, "without latex2mathml the TeX is shown as written"


def test_the_search_page_in_chromium_finds_a_word_on_the_page_that_holds_it(site):
    out, done = site
    assert done["sections"] > 30
    dom = browser.dump_dom((out / "search.html").as_uri() + "?q=Benjamini+Yekutieli")
    status = re.search(r'<p id="status"[^>]*>(\d+) sections? match', dom)
    assert status and int(status.group(1)) >= 1, dom[-2000:]
    results = re.findall(r'<li><a href="([\w.]+\.html)(#[^"]*)?">', dom)
    assert "01_find_neurons.html" in [page for page, _ in results]
    assert "<mark>" in dom
    none = browser.dump_dom((out / "search.html").as_uri() + "?q=zzqxjv")
    assert re.search(r'<p id="status"[^>]*>0 sections match', none)
