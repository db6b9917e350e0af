"""The whole lecture as ONE self-contained HTML page (figures embedded as base64 PNG).

    python -m helpers.report [--out build/report.html] [--model NAME] [--contrast him_her] [--layer L]
                             [--q 0.05] [--method bh|by] [--mode zero|mean] [--draws 200] [--no-controls]
    build_report(model, tok, ...) -> Report    parts 1-3 (+ the random-neuron lesion test when
                                               helpers.controls): figures and summaries
    Report.html() -> str;  Report.write(path) -> Path

The model's name heads the page; when it is the kit's offline stand-in (or any model other
than bert-base-uncased) a banner says so, so a stand-in page can never pass for the lecture's.
"""
from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import html
import io
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch
import transformers

from .arch import default_layer, model_label, n_layers, n_neurons
from .cli import add_lecture_args, checked_setup, positive_int, writable_file
from .controls.nulls import lesion_test
from .lecture import TrainModeWarning, part1, part2, part3, train_mode_note
from .lesion import ablation_values
from .loading import DEFAULT_MODEL, DELTA_DIR, DELTA_FILE, STANDIN
from .plots.controls import null_distribution
from .plots.lecture import lecture_figures
from .readout import diff_text
from .stimuli import StimulusError, cloze_set, masked_set

DEFAULT_OUT = Path("build") / "report.html"


@dataclass
class ReportFigure:
    title: str
    caption: str
    png: bytes

    def img(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(self.title)}">'
                f"<figcaption><b>{html.escape(self.title)}.</b> {html.escape(self.caption)}</figcaption></figure>")


@dataclass
class Section:
    title: str
    summary: str                                   # plain text, one finding per line
    figures: list[ReportFigure] = field(default_factory=list)
    note: str = ""                                 # plain text shown under the title


@dataclass
class Report:
    model_label: str
    settings: dict[str, str]
    key_numbers: list[tuple[str, str]]
    sections: list[Section]
    notes: list[str] = field(default_factory=list)     # about the model (left in train mode, ...), under the banner
    created: str = field(default_factory=lambda: _dt.datetime.now().strftime("%Y-%m-%d %H:%M"))

    @property
    def figures(self) -> list[ReportFigure]:
        return [f for s in self.sections for f in s.figures]

    def html(self) -> str:
        e = html.escape
        kind, banner = model_banner(self.model_label)
        settings = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.settings.items())
        keys = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.key_numbers)
        notes = "".join(f"<div class='banner other'>{e(n)}</div>" for n in self.notes)
        body = []
        for s in self.sections:
            body.append(f"<section><h2>{e(s.title)}</h2>")
            if s.note:
                body.append(f"<p class='note'>{e(s.note)}</p>")
            if s.summary:
                body.append(f"<pre class='summary'>{e(s.summary)}</pre>")
            body.extend(f.img() for f in s.figures)
            body.append("</section>")
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>MLP lesion report: {e(self.model_label)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }}
.model {{ font-size: 1.5em; margin: 0.3em 0; }}
.banner {{ padding: 0.7em 1em; border-radius: 6px; margin: 0.6em 0 1em; font-size: 1.05em; }}
.banner.standin {{ background: #fff4ce; border: 2px solid #c98a00; }}
.banner.other {{ background: #f0f0f0; border: 2px solid #888; }}
.banner.lecture {{ background: #e6f4ea; border: 2px solid #2e7d32; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ text-align: left; padding: 3px 10px; border-bottom: 1px solid #e3e3e3; vertical-align: top; }}
pre.summary {{ background: #f7f7f7; padding: 0.7em; white-space: pre-wrap; font-size: 0.9em; }}
figure {{ margin: 1em 0; }} figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-size: 0.9em; color: #444; }} .note {{ color: #555; }}
.grid {{ display: flex; gap: 2em; flex-wrap: wrap; }}
</style></head><body>
<h1>Statistical criteria to lesion MLP neurons: report</h1>
<div class="model">Model: <b>{e(self.model_label)}</b></div>
<div class="banner {kind}">{banner}</div>
{notes}
<div class="grid">
<div><h3>Key numbers</h3><table>{keys}</table></div>
<div><h3>Settings</h3><table>{settings}</table></div>
</div>
{''.join(body)}
<p class="note">Made {e(self.created)} by <code>python -m helpers.report</code>.</p>
</body></html>
"""

    def write(self, path=DEFAULT_OUT) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path


def model_banner(label: str) -> tuple[str, str]:
    """(css class, HTML) of the banner saying which model made the page."""
    if label == STANDIN:
        return "standin", (f"<b>This page was made with the kit's offline STAND-IN model</b> (a small 6-layer "
                           f"BERT fine-tuned by the kit), <b>not {DEFAULT_MODEL}</b>. Its numbers differ from "
                           f"the lecture's; run with <code>--model {DEFAULT_MODEL}</code> where the Hugging Face "
                           f"hub answers to reproduce the lecture.")
    if label == DEFAULT_MODEL:
        return "lecture", f"<b>{DEFAULT_MODEL}</b>: the lecture's model."
    return "other", (f"<b>This page was made with {html.escape(label)}, not {DEFAULT_MODEL}</b> (the lecture's "
                     f"model); its numbers are not the lecture's.")


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _evalset(tokenizer, contrast, word: str):
    """Held-out cloze items whose answer is `word` if there are any, else the contrast's own sentences masked."""
    for role in ("object", "subject", "possessive"):
        try:
            return cloze_set(tokenizer, word, role)
        except StimulusError:
            continue
    return masked_set(tokenizer, contrast, word)


def _controls_section(model, tokenizer, p1, mode: str, n_draws: int, seed: int) -> Section:
    c = p1.contrast
    results, titles, lines, skipped = [], [], [], []
    values = ablation_values(model, tokenizer, c, p1.layer, mode, site=p1.site)
    for word in c.words:
        neurons = p1.neurons(word)
        if not neurons.any():
            skipped.append(f"no '{word}' neurons passed FDR, so there is nothing to lesion for '{word}'")
            continue
        ev = _evalset(tokenizer, c, word)
        r = lesion_test(model, tokenizer, p1.layer, neurons, ev, n_draws=n_draws, seed=seed, mode=mode,
                        values=values, site=p1.site, label=f"'{word}' neurons")
        results.append(r)
        titles.append(f"'{word}' neurons")
        lines.append(f"[{ev.name}] " + r.summary())
    figs = []
    caption = ("Grey: the drop caused by random neuron sets of the same size and layer (the null). Red: the drop "
               "caused by the FDR-selected set. p is one-sided: the share of random sets that hurt at least as much.")
    for r, t in zip(results, titles):
        figs.append(ReportFigure(f"Lesion test of the {t} against random neurons",
                                 caption + " Right: each evaluation text before vs after the lesion.",
                                 _png(null_distribution(r))))
    return Section("Control: is the lesion bigger than for random neurons?", "\n".join(lines + skipped), figs,
                   note="helpers.controls.lesion_test: the selected neurons are ablated at the [MASK] of each "
                        "evaluation text and compared with random sets of the same size from the same layer.")


def build_report(model, tokenizer, contrast="him_her", layer: int | None = None, q: float = 0.05,
                 method: str = "bh", mode: str = "zero", item: int = 0, controls: bool = True,
                 n_draws: int = 200, seed: int = 0, log=print) -> Report:
    """Run parts 1-3 and the random-neuron control (helpers.controls) and collect the page.

    controls: False leaves out the random-neuron lesion tests (the slow part).
    """
    log = log or (lambda *a: None)
    label = model_label(model)
    note = train_mode_note(model)
    if note:
        log(note)
    layer = default_layer(model) if layer is None else layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainModeWarning)      # the note above says it once
        log(f"report: part 1 ({label}, layer {layer})")
        p1 = part1(model, tokenizer, contrast, layer, q, method)
        log("report: part 2")
        p2 = part2(model, tokenizer, p1.contrast, item)
        log(f"report: part 3 ({mode} ablation)")
        p3 = part3(model, tokenizer, p1, p2, mode)
    c = p1.contrast
    figs = lecture_figures(p1, p2, p3)
    sections = [
        Section("Part 1: find the neurons (paired t-test + FDR)", p1.summary(), [
            ReportFigure("MLP activations", "Distribution of every neuron's value at the target word, before "
                         "and after GELU.", _png(figs["1_activation_histograms"])),
            ReportFigure("t-value per neuron", f"Paired t-test of '{c.a}' vs '{c.b}' sentences; marked neurons pass "
                         f"FDR ({method.upper()}, q={q}).", _png(figs["1_tvalues"]))]),
        Section("Part 2: the model's predictions (no ablation)", p2.summary(), [
            ReportFigure("Clean logits", "Logits of both words at both slots, for the clean sentence and with each "
                         "slot masked.", _png(figs["2_clean_logits"]))]),
        Section(f"Part 3: lesion the neurons ({mode} ablation)", p3.summary(), [
            ReportFigure("Ablation effect", "Clean minus ablated logits (positive: the ablation lowered the logit), "
                         "and the choice itself, logit(right) minus logit(wrong) at each [MASK], before vs after.",
                         _png(figs["3_ablation_effect"]))]),
    ]
    if controls:
        log(f"report: control lesion tests ({n_draws} random sets)")
        sections.append(_controls_section(model, tokenizer, p1, mode, n_draws, seed))

    key = [("model", label), ("layer", f"{layer} of {n_layers(model)} ({n_neurons(model, layer)} neurons)"),
           *[(f"'{w}' neurons", str(int(p1.neurons(w).sum()))) for w in c.words]]
    for w, other, before, after in p3.logit_diffs():
        key.append((f"[MASK]={w}", f"{diff_text(w, other, before, after)} after ablation"))
    settings = {"model": label, "contrast": f"{c.name} ({c.a} vs {c.b}, {len(c.pairs)} pairs)",
                "layer": str(layer), "site": f"{p1.site}-GELU", "FDR": f"{method.upper()}, q = {q}",
                "ablation": mode, "demo item": str(item)}
    if controls:
        settings["control draws"] = f"{n_draws} (seed {seed})"
    weights = _standin_weights() if label == STANDIN else ""
    if weights:
        settings["stand-in weights"] = weights
    settings["software"] = _versions()
    return Report(label, settings, key, sections, [note] if note else [])


def _standin_weights() -> str:
    """Which stand-in checkpoint: sha256 prefix of its delta file (the interim and final ones differ)."""
    path = DELTA_DIR / DELTA_FILE
    if not path.exists():
        return ""
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{DELTA_FILE} sha256 {h[:12]}"


def _versions() -> str:
    return f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}"


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m helpers.report",
                                 description="Run the lecture (parts 1-3 and the controls) and write one HTML page.")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"HTML file to write (default {DEFAULT_OUT})")
    add_lecture_args(ap)
    ap.add_argument("--mode", default="zero", type=str.lower, choices=["zero", "mean"])
    ap.add_argument("--draws", type=positive_int, default=200, help="random neuron sets per control lesion test")
    ap.add_argument("--no-controls", action="store_true", help="leave out the random-neuron lesion tests")
    a = ap.parse_args(argv)
    writable_file(ap, "--out", a.out)             # before the model: a probe file is written and removed
    matplotlib.use("Agg")
    model, tok, _ = checked_setup(ap, a)
    rep = build_report(model, tok, a.contrast, a.layer, a.q, a.method, a.mode,
                       controls=not a.no_controls, n_draws=a.draws)
    path = rep.write(a.out)
    print(f"report: {path.resolve()} ({len(rep.figures)} figures, model {rep.model_label})")
    return path


if __name__ == "__main__":
    main()
