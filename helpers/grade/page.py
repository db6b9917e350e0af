"""The class report: one self-contained HTML page (inline CSS and SVG, no URL outside it) for a projector.

    render(outcomes, tmpl, title=..., facts=...) -> str
    summary(outcomes, tmpl) -> [ExerciseSummary]      per exercise: counts per status, mistakes by key, ...
    summary_text(summaries) -> str                    the same as plain text (the grader prints it)

Per exercise: how many passed (of the students who handed in its notebook), a bar of every status, the most
common named mistakes as a bar chart, each with what the check told those students, the exercise's hint
(the collapsed hint above it in the exercise notebook), and the other wrong answers, errors and time-outs.
Then the whole student x exercise table.
"""
from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass, field

from .outcomes import STATUSES, WORDS, Outcome, rows

try:
    import mistune
except ImportError:  # nbconvert brings it; without it a hint shows as escaped text
    mistune = None

COLOURS = {"passed": "#1a7f37", "mistake": "#c62828", "differs": "#e07000", "error": "#7b1fa2",
           "not_done": "#9e9e9e", "timeout": "#37474f", "crashed": "#000000", "cannot_tell": "#b8860b",
           "check_failed": "#5d4037", "not_run": "#607d8b", "not_submitted": "#ffffff"}
TOP = 6          # named mistakes shown in the chart


@dataclass
class ExerciseSummary:
    notebook: str
    label: str
    name: str
    hint: str                                           # markdown
    graded: int = 0                                     # students who handed in its notebook
    counts: Counter = field(default_factory=Counter)    # status -> students
    mistakes: list = field(default_factory=list)        # [(key, students, the check's text)], most common first
    others: list = field(default_factory=list)          # [(status, text, students)]: differs, errors, ...

    @property
    def title(self) -> str:
        return f"{self.label} {self.name}"

    @property
    def anchor(self) -> str:
        return "ex-" + re.sub(r"[^a-z0-9]+", "-", f"{self.label}-{self.name}".lower()).strip("-")


def summary(all_outcomes: list[Outcome], tmpl: dict) -> list[ExerciseSummary]:
    """Per graded exercise, in the templates' order."""
    cols, _ = rows(all_outcomes, tmpl)
    hints = {(nb, e.label): (e.details or e.hint) for nb, exs in tmpl.items() for e in exs}
    out = []
    for nb, label, name in cols:
        mine = [o for o in all_outcomes if o.notebook == nb and o.label == label and o.status != "not_submitted"]
        s = ExerciseSummary(nb, label, name, hints.get((nb, label), ""), len(mine), Counter(o.status for o in mine))
        keys = Counter(o.key for o in mine if o.status == "mistake")
        for key, n in keys.most_common():
            texts = Counter(o.text for o in mine if o.status == "mistake" and o.key == key)
            s.mistakes.append((key, n, texts.most_common(1)[0][0]))
        rest = Counter((o.status, o.text) for o in mine if o.status not in ("passed", "mistake", "not_done"))
        s.others = [(st, text, n) for (st, text), n in rest.most_common()]
        out.append(s)
    return out


def summary_text(sums: list[ExerciseSummary]) -> str:
    """The per-exercise summary as plain text: passed counts, statuses, top mistakes."""
    lines = []
    for s in sums:
        rest = ", ".join(f"{WORDS[st]} {s.counts[st]}" for st in STATUSES if st != "passed" and s.counts[st])
        lines.append(f"{s.title} ({s.notebook}): {s.counts['passed']} of {s.graded} passed" + (f"; {rest}" if rest else ""))
        for key, n, text in s.mistakes[:TOP]:
            lines.append(f"    {n} x {key}: {_short(text, 110)}")
    return "\n".join(lines)


# --- HTML ----------------------------------------------------------------------------------------------------

def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _inline(text: str) -> str:
    """Plain text with `code` spans, escaped."""
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and p.endswith("`") and len(p) > 1
                   else html.escape(p) for p in parts)


def _markdown(text: str) -> str:
    """A hint's markdown as HTML (mistune, raw HTML escaped), links turned into their text (nothing points out)."""
    try:
        out = mistune.create_markdown(escape=True)(text)
    except Exception:  # noqa: BLE001  mistune missing or changed: the text, escaped, is still readable
        out = "<p>" + _inline(text) + "</p>"
    out = re.sub(r"<a\b[^>]*>(.*?)</a>", r"\1", out, flags=re.S)
    return re.sub(r"<img\b[^>]*>", "", out)


def _status_bar(s: ExerciseSummary) -> str:
    """One stacked bar: every status, as a share of the students graded."""
    if not s.graded:
        return ""
    x, parts = 0.0, []
    for st in STATUSES:
        n = s.counts[st]
        if not n:
            continue
        w = 1000 * n / s.graded
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="40" fill="{COLOURS[st]}">'
                     f'<title>{WORDS[st]}: {n}</title></rect>')
        if w > 60:
            fg = "#000" if st in ("not_done", "cannot_tell") else "#fff"
            parts.append(f'<text x="{x + w / 2:.1f}" y="27" text-anchor="middle" fill="{fg}" '
                         f'font-size="20">{n}</text>')
        x += w
    legend = "".join(f'<li data-status="{st}"><span class="sw" style="background:{COLOURS[st]}"></span>'
                     f'{WORDS[st]} <b>{s.counts[st]}</b></li>' for st in STATUSES if s.counts[st])
    return (f'<svg class="status-bar" viewBox="0 0 1000 40" preserveAspectRatio="none" role="img" '
            f'aria-label="statuses">{"".join(parts)}</svg><ul class="legend">{legend}</ul>')


def _mistake_chart(s: ExerciseSummary) -> str:
    top = s.mistakes[:TOP]
    if not top:
        return '<p class="none">No named mistake.</p>'
    most = max(n for _, n, _ in top)
    row, label_w, bar_w = 48, 330, 520
    bars = []
    for i, (key, n, _) in enumerate(top):
        y = i * row
        w = max(4.0, bar_w * n / most)
        share = f"{100 * n / s.graded:.0f}%" if s.graded else ""
        bars.append(f'<text x="{label_w - 12}" y="{y + 30}" text-anchor="end" font-size="22" '
                    f'font-family="ui-monospace, monospace">{html.escape(key)}</text>'
                    f'<rect x="{label_w}" y="{y + 8}" width="{w:.1f}" height="32" fill="{COLOURS["mistake"]}"/>'
                    f'<text x="{label_w + w + 10:.1f}" y="{y + 31}" font-size="22" font-weight="bold">{n} '
                    f'<tspan font-weight="normal">({share})</tspan></text>')
    chart = (f'<svg class="mistakes" viewBox="0 0 1000 {row * len(top)}" role="img" '
             f'aria-label="most common mistakes">{"".join(bars)}</svg>')
    items = "".join(f'<li data-key="{html.escape(key)}"><b class="key">{html.escape(key)}</b> '
                    f'<span class="n">{n} student{"s" if n != 1 else ""}</span><p>{_inline(text)}</p></li>'
                    for key, n, text in top)
    more = (f'<p class="more">and {len(s.mistakes) - TOP} more named mistake(s): '
            f'{", ".join(html.escape(k) for k, _, _ in s.mistakes[TOP:])}</p>') if len(s.mistakes) > TOP else ""
    return chart + f'<ol class="mistake-list">{items}</ol>' + more


def _others(s: ExerciseSummary) -> str:
    if not s.others:
        return ""
    n = sum(k for _, _, k in s.others)
    items = "".join(f'<li data-status="{st}"><b>{WORDS[st]}</b> × {k}: {_inline(_short(text, 400))}</li>'
                    for st, text, k in s.others[:12])
    return (f'<details class="others"><summary>Other outcomes ({n}): wrong answers no usual mistake explains, '
            f'errors, time-outs</summary><ul>{items}</ul></details>')


def _section(s: ExerciseSummary) -> str:
    passed = s.counts["passed"]
    hint = (f'<div class="hint"><h3>Hint (the notebook’s)</h3>{_markdown(s.hint)}</div>' if s.hint else "")
    return (f'<section class="exercise" id="{s.anchor}" data-exercise="{html.escape(s.label)}">'
            f'<h2>{html.escape(s.title)} <span class="nb">notebook {html.escape(s.notebook)}</span></h2>'
            f'<p class="passed"><span class="count" data-passed="{passed}" data-graded="{s.graded}">'
            f'{passed} of {s.graded}</span> passed</p>{_status_bar(s)}'
            f'<h3>Most common mistakes</h3>{_mistake_chart(s)}{hint}{_others(s)}</section>')


def _grid(all_outcomes: list[Outcome], tmpl: dict) -> str:
    cols, table = rows(all_outcomes, tmpl)
    head = "".join(f"<th>{html.escape(label)}<br><small>{html.escape(name)}</small></th>" for _, label, name in cols)
    body = []
    for who, got in table:
        cells = []
        for nb, label, _ in cols:
            o = got.get((nb, label))
            if o is None:
                cells.append('<td class="s-not_submitted"></td>')
                continue
            short = o.key if o.status == "mistake" else WORDS[o.status]
            cells.append(f'<td class="s-{o.status}" title="{html.escape(o.cell())}">{html.escape(short)}</td>')
        body.append(f"<tr><th scope=\"row\">{html.escape(who)}</th>{''.join(cells)}</tr>")
    return (f'<section id="students"><h2>Every student</h2><table class="grid"><thead><tr><th>student</th>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></section>')


CSS = """
:root { font-size: 20px; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem 4rem; color: #111; background: #fff; line-height: 1.4; }
h1 { font-size: 2.2rem; margin-bottom: .2rem; } h2 { font-size: 1.7rem; margin: 0 0 .4rem; }
h3 { font-size: 1.2rem; margin: 1.2rem 0 .4rem; } .meta { color: #333; font-size: 1.1rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; font-size: 1.1rem; }
nav a { color: #0b57d0; }
.exercise { border-top: 4px solid #222; padding: 1.2rem 0 1.6rem; page-break-inside: avoid; }
.nb { font-size: 1rem; font-weight: normal; color: #444; margin-left: .6rem; }
.passed { font-size: 1.5rem; margin: .2rem 0 .6rem; } .count { font-size: 2.6rem; font-weight: 800; color: #1a7f37; }
svg { display: block; width: 100%; height: auto; } .status-bar { height: 40px; border: 1px solid #222; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; font-size: 1rem; }
.sw { display: inline-block; width: 1rem; height: 1rem; border: 1px solid #222; margin-right: .35rem;
      vertical-align: -2px; }
.mistake-list { font-size: 1.05rem; padding-left: 1.6rem; } .mistake-list li { margin: .5rem 0; }
.mistake-list p { margin: .15rem 0 0; } .key, code { font-family: ui-monospace, Menlo, Consolas, monospace; }
.key { color: #c62828; font-size: 1.1rem; } .n { color: #333; margin-left: .4rem; }
code { background: #f1f1f1; padding: 0 .2rem; border-radius: 3px; font-size: .95em; }
.hint { background: #eef4ff; border-left: 6px solid #0b57d0; padding: .2rem 1rem .4rem; margin-top: 1rem; }
.none { color: #1a7f37; font-size: 1.1rem; } details.others { margin-top: .8rem; font-size: 1rem; }
.grid { border-collapse: collapse; font-size: .9rem; margin-top: .6rem; }
.grid th, .grid td { border: 1px solid #999; padding: .25rem .5rem; text-align: left; vertical-align: top; }
.grid td { color: #fff; } .grid td.s-not_done, .grid td.s-cannot_tell, .grid td.s-not_submitted { color: #000; }
""" + "".join(f".grid td.s-{st} {{ background: {c}; }}\n" for st, c in COLOURS.items())


def render(all_outcomes: list[Outcome], tmpl: dict, title: str = "Class report", facts: str = "") -> str:
    """The whole page (see the module docstring). `facts`: one line under the title (students, date, model)."""
    sums = summary(all_outcomes, tmpl)
    nav = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a> {s.counts["passed"]}/{s.graded}</li>'
                  for s in sums)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1><p class=\"meta\">{html.escape(facts)}</p></header>"
            f"<nav><ul>{nav}<li><a href=\"#students\">every student</a></li></ul></nav>"
            + "".join(_section(s) for s in sums) + _grid(all_outcomes, tmpl) + "</body></html>\n")
