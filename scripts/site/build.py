#!/usr/bin/env python3
"""Build the course site: a static site from the executed notebooks, offline, with pip-installable tools only.

    python scripts/site/build.py [--out build/site] [--notebooks notebooks]      (make site)

One page per notebook of notebooks/ (the solution versions, executed and committed: their outputs and figures
as they are, figures embedded in the page), rendered by nbconvert; an index page; a search page whose index
(search-index.js) is made here from every page's sections. On a notebook's page:
- a launch-in-Colab button for the exercise version (notebooks/exercises/) and one for the solution, with the
  URLs the notebooks' first cells already use (their Colab badge, which the buttons replace);
- each exercise cell as the student gets it (the stub that raises the hint), with the worked solution under it
  in a collapsed "Solution" block; hints and answers stay collapsed <details> blocks as in the notebooks;
- links to other notebooks go to their pages, links to files of the kit (../README.md, ../docs/...) to the
  repository on GitHub (from the Colab URL);
- math ($...$) as MathML when latex2mathml is installed (`make site` installs it), else as its TeX source;
- no script or style from outside: nbconvert's own (require.js, MathJax, widget managers from CDNs) are taken
  out; interactive widgets (notebook 05) need a running kernel, so the page says to open it in Colab.

Publish: copy the folder to any static host, e.g. GitHub Pages (README, "The course site").
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
HEADER = re.compile(r"^# exercise: (\([a-z0-9]+\)) (\w+)")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([^/\s\"')]+)/([^/\s\"')]+)/blob/([^/\s\"')]+)/"
                   r"([^\s\"')]+\.ipynb)")
BADGE = re.compile(r'<a href="https://colab\.research\.google\.com/[^"]*"[^>]*>\s*<img [^>]*colab-badge[^>]*/?>\s*</a>\s*')
SECTION_CAP = 1500        # characters of a section's text kept in the search index
STATIC = Path(__file__).resolve().parent / "static"


# --- what a notebook holds ------------------------------------------------------------------------------------

def colab_url(nb) -> str | None:
    """The Colab URL of the notebook's first cell (its badge), or None."""
    m = COLAB.search(nb.cells[0].source) if nb.cells else None
    return m.group(0) if m else None


def github_base(url: str | None) -> str | None:
    """https://github.com/OWNER/REPO/blob/BRANCH/ from a Colab URL."""
    m = COLAB.match(url or "")
    return f"https://github.com/{m.group(1)}/{m.group(2)}/blob/{m.group(3)}/" if m else None


def _plain(markdown: str) -> str:
    """One line of markdown as plain text: links as their text, no emphasis or code marks."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[*`]", "", " ".join(text.split()))


def title_of(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^# (.+)$", cell.source, re.M)
            if m:
                return _plain(m.group(1))
    return fallback


def blurb_of(nb) -> str:
    """The first plain paragraph of the first markdown cell after its title (not a quote, not the course line)."""
    for cell in nb.cells[:2]:
        if cell.cell_type != "markdown" or "# " not in cell.source:
            continue
        for para in re.split(r"\n\s*\n", cell.source.split("\n# ", 1)[-1].split("\n", 1)[-1]):
            p = para.strip()
            if p and not p.startswith((">", "*Course", "<", "#", "**Objectives")):
                return _plain(p)
    return ""


def exercises_of(nb) -> list[tuple[str, str]]:
    return [HEADER.match(c.source).groups() for c in nb.cells if c.cell_type == "code" and HEADER.match(c.source)]


# --- the page's notebook ----------------------------------------------------------------------------------------

def _math(text: str) -> str:
    """$$...$$ and $...$ outside code as MathML (latex2mathml), or left as they are when it is missing."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        return text
    parts = re.split(r"(```.*?```|`[^`\n]*`)", text, flags=re.S)

    def one(m, display):
        try:
            return convert(m.group(1).strip(), display="block" if display else "inline")
        except Exception:  # noqa: BLE001  a formula latex2mathml cannot read: its TeX, as written
            return m.group(0)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\$\$(.+?)\$\$", lambda m: one(m, True), parts[i], flags=re.S)
        parts[i] = re.sub(r"(?<![\\$\w])\$([^$\n]+?)\$(?![\w$])", lambda m: one(m, False), parts[i])
    return "".join(parts)


def _links(text: str, pages: set[str], base: str | None) -> str:
    """Markdown and HTML links: a sibling notebook -> its page; ../a/file of the kit -> the repository."""
    def fix(target: str) -> str:
        path, _, anchor = target.partition("#")
        name = Path(path).name
        if path.endswith(".ipynb") and "/" not in path.strip("./") and Path(name).stem in pages:
            return f"{Path(name).stem}.html" + (f"#{anchor}" if anchor else "")
        if path.startswith("../") and base:
            return base + path[3:] + (f"#{anchor}" if anchor else "")
        return target
    text = re.sub(r"\]\(([^)\s]+)\)", lambda m: f"]({fix(m.group(1))})", text)
    return re.sub(r'href="([^"]+)"', lambda m: f'href="{fix(m.group(1))}"', text)


def page_notebook(nb, student, pages: set[str], base: str | None):
    """The notebook as the page shows it: badge out, links and math fixed, each exercise cell as the student's
    stub with the solution in a collapsed block under it."""
    nb = copy.deepcopy(nb)
    stubs = {}
    if student is not None:
        stubs = {HEADER.match(c.source).group(1): c.source for c in student.cells
                 if c.cell_type == "code" and HEADER.match(c.source)}
    cells = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            src = BADGE.sub("", cell.source, count=1) if k == 0 else cell.source
            cell.source = _math(_links(src, pages, base))
            cells.append(cell)
            continue
        m = HEADER.match(cell.source) if cell.cell_type == "code" else None
        if m and m.group(1) in stubs:
            solution = "\n".join(line for line in cell.source.split("\n")
                                 if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
                                 and not line.strip().startswith("### HINT:"))
            stub = nbformat.v4.new_code_cell(stubs[m.group(1)])
            stub.metadata["kit_exercise"] = m.group(1)
            cells.append(stub)
            cells.append(nbformat.v4.new_markdown_cell(
                f'<details class="kit-solution"><summary>Solution {m.group(1)}</summary>\n\n```python\n'
                f"{solution}\n```\n\n</details>"))
            continue
        cells.append(cell)
    nb.cells = cells
    return nb


# --- HTML ---------------------------------------------------------------------------------------------------

def _clean(body: str) -> str:
    """nbconvert's page without anything from outside: every <script> (require.js, MathJax and its config, the
    widget managers, mermaid) and any stylesheet or image that points at a URL."""
    body = re.sub(r"<script\b[^>]*>.*?</script>", "", body, flags=re.S | re.I)
    body = re.sub(r"<link\b[^>]*href=\"(?:https?:)?//[^\"]*\"[^>]*>", "", body, flags=re.I)
    return re.sub(r"<img\b[^>]*src=\"(?:https?:)?//[^\"]*\"[^>]*>", "", body, flags=re.I)


def _bar(title: str, exercise_url: str | None, solution_url: str | None, widgets: bool) -> str:
    buttons = []
    if exercise_url:
        buttons.append(f'<a class="kit-colab kit-colab-exercise" href="{html.escape(exercise_url)}" target="_blank" '
                       f'rel="noopener">▶ Open the exercises in Colab</a>')
    if solution_url:
        buttons.append(f'<a class="kit-colab kit-colab-solution" href="{html.escape(solution_url)}" '
                       f'target="_blank" rel="noopener">▶ Open the solution in Colab</a>')
    note = ('<p class="kit-note">This notebook\'s interactive widgets need a running kernel: open it in Colab '
            '(or Jupyter) to use them; the page shows their last output.</p>') if widgets else ""
    return (f'<header class="kit-bar"><a class="kit-home" href="index.html">Course home</a>'
            f'<form class="kit-search" action="search.html" role="search"><input name="q" type="search" '
            f'placeholder="Search the course" aria-label="Search the course"></form>'
            f'<div class="kit-launch">{"".join(buttons)}</div>{note}</header>')


def _sections(page: str, title: str, body: str) -> list[dict]:
    """The search index's entries of one page: a section per h1-h3, with its text."""
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", body, flags=re.S | re.I)
    body = re.sub(r'<header class="kit-bar">.*?</header>', " ", body, flags=re.S)
    body = re.sub(r'<a class="anchor-link"[^>]*>.*?</a>', "", body, flags=re.S)
    parts = re.split(r'(<h[1-3][^>]*\bid="[^"]*"[^>]*>.*?</h[1-3]>)', body, flags=re.S)
    out, anchor, heading = [], "", title
    for part in parts:
        m = re.match(r'<h[1-3][^>]*\bid="([^"]*)"[^>]*>(.*?)</h[1-3]>', part, re.S)
        if m:
            anchor, heading = m.group(1), " ".join(html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).split())
            continue
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", part)).split())
        if text:
            out.append({"page": page, "title": title, "section": heading, "anchor": anchor,
                        "text": text[:SECTION_CAP]})
    return out


def render_page(nb, name: str, title: str, exercise_url, solution_url) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    body = _clean(body)
    widgets = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                  for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", body, count=1, flags=re.S)
    body = body.replace("</head>", '<link rel="stylesheet" href="site.css"></head>', 1)
    return re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + _bar(title, exercise_url, solution_url, widgets),
                  body, count=1)


def render_index(entries: list[dict]) -> str:
    items = []
    for e in entries:
        exs = ", ".join(f"{label} {name}" for label, name in e["exercises"])
        buttons = "".join(
            f'<a class="kit-colab" href="{html.escape(url)}" target="_blank" rel="noopener">▶ {what} in Colab</a>'
            for what, url in (("Exercises", e["exercise_url"]), ("Solution", e["solution_url"])) if url)
        items.append(f'<li class="kit-card"><h2><a href="{e["page"]}">{html.escape(e["title"])}</a></h2>'
                     f'<p>{html.escape(e["blurb"])}</p>'
                     + (f'<p class="kit-ex">Exercises: {html.escape(exs)}</p>' if exs else "")
                     + f'<div class="kit-launch">{buttons}</div></li>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            "content=\"width=device-width, initial-scale=1\"><title>Statistical criteria to lesion MLP neurons — "
            "course notebooks</title><link rel=\"stylesheet\" href=\"site.css\"></head><body class=\"kit-index\">"
            "<header class=\"kit-bar\"><span class=\"kit-home\">Course home</span><form class=\"kit-search\" "
            "action=\"search.html\" role=\"search\"><input name=\"q\" type=\"search\" placeholder=\"Search the "
            "course\" aria-label=\"Search the course\"></form></header><main>"
            "<h1>Statistical criteria to lesion MLP neurons</h1><p>The course's notebooks, run on the kit's "
            "offline stand-in model, with every output. Each exercise shows the cell you fill in, its hint and the "
            "worked solution, collapsed. To run a notebook, open it in Colab: the exercise version to work on, or "
            f"the solution.</p><ol class=\"kit-cards\">{''.join(items)}</ol></main></body></html>\n")


SEARCH_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Search the course</title><link rel="stylesheet" href="site.css"></head><body class="kit-index">
<header class="kit-bar"><a class="kit-home" href="index.html">Course home</a></header><main>
<h1>Search the course</h1>
<form class="kit-search-big" action="search.html" role="search"><input id="q" name="q" type="search"
 placeholder="a word or two, e.g. Benjamini" aria-label="Search the course" autofocus></form>
<p id="status" aria-live="polite"></p><ol id="results"></ol>
<noscript>Search needs JavaScript; the index page lists every notebook.</noscript>
</main><script src="search-index.js"></script><script src="search.js"></script></body></html>
"""


def build(out: Path, notebooks: Path = ROOT / "notebooks") -> dict:
    """Write the site into `out` (emptied first). Returns {"pages": [...], "sections": n, "seconds": s}."""
    t0 = time.monotonic()
    sources = sorted(p for p in notebooks.glob("0*.ipynb"))
    if not sources:
        raise SystemExit(f"no notebooks in {notebooks}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pages = {p.stem for p in sources}
    entries, index = [], []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        student_path = notebooks / "exercises" / path.name
        student = nbformat.read(student_path, as_version=4) if student_path.exists() else None
        solution_url = colab_url(nb)
        exercise_url = colab_url(student) if student is not None else None
        title = title_of(nb, path.stem)
        shown = page_notebook(nb, student, pages, github_base(solution_url))
        page = f"{path.stem}.html"
        text = render_page(shown, path.stem, title, exercise_url, solution_url)
        (out / page).write_text(text, encoding="utf-8")
        index += _sections(page, title, text)
        entries.append({"page": page, "title": title, "blurb": blurb_of(nb), "exercises": exercises_of(nb),
                        "exercise_url": exercise_url, "solution_url": solution_url})
        print(f"  {page}: {len(text) // 1024} kB", flush=True)
    (out / "index.html").write_text(render_index(entries), encoding="utf-8")
    (out / "search.html").write_text(SEARCH_PAGE, encoding="utf-8")
    (out / "search-index.js").write_text("window.SEARCH_INDEX = " + json.dumps(index, ensure_ascii=False) + ";\n",
                                         encoding="utf-8")
    for f in ("site.css", "search.js"):
        shutil.copyfile(STATIC / f, out / f)
    (out / ".nojekyll").write_text("", encoding="utf-8")      # GitHub Pages: serve the files as they are
    return {"pages": [e["page"] for e in entries], "sections": len(index), "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    p.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                   help="the executed solution notebooks (their exercise versions: NOTEBOOKS/exercises/)")
    a = p.parse_args(argv)
    try:
        import latex2mathml  # noqa: F401
    except ImportError:
        print("note: latex2mathml is not installed, so math shows as TeX (pip install latex2mathml)")
    done = build(a.out, a.notebooks)
    print(f"wrote {a.out}: {len(done['pages'])} notebook pages, index.html, search.html "
          f"({done['sections']} sections indexed) in {done['seconds']:.0f} s; open {a.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
