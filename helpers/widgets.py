"""Explore it yourself: one ipywidgets panel over the whole lecture.

    Explorer(model=None, tokenizer=None, ...)   the panel; display it (or call .show()) in a notebook
    Explorer.refresh()                         recompute from the current control values and redraw
    Explorer.result                            ExplorerResult of the last refresh (numbers the figure shows)
    ExplorerResult                             model, layer, test, ablated neurons, logits before/after

Controls: model (stand-in / bert-base-uncased), contrast set, layer, FDR q and method
(bh/by), neuron set (the contrast's a or b neurons, top-k by |t|, or as many neurons
drawn at random from the whole layer), ablation mode (zero/mean) and a free-text
sentence with [MASK].
The logits of both contrast words at every [MASK] are read before and after the chosen
neurons are ablated at the [MASK].

Design. Every callback is a plain method (`on_model`, `on_change`, ...), so tests drive
the panel by setting widget values. Activations are cached per (model, contrast, layer,
site); one capture fills every layer, so moving the layer, q, the method, the neuron set
or the ablation mode never recomputes them. The figure is drawn on a matplotlib Figure
(no pyplot state), rendered to PNG and shown inside an `ipywidgets.Output` that is cleared
first, so changes replace the figure instead of stacking new ones (Colab: colabtools
#3623). Only core ipywidgets, with features common to ipywidgets 7 (Colab's 7.7.1) and 8.
"""
from __future__ import annotations

import html
import io
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .lecture import Part1, default_layer
from .lesion import ablate_neurons, masked_logits
from .models import DEFAULT_MODEL, ENV_VAR, STANDIN, load_mlm, max_tokens, model_label, n_layers, n_neurons
from .plots import COLORS, tvalues
from .stats import paired_ttest_fdr
from .stimuli import MASK, Contrast, StimulusError, list_contrasts, load_contrast, mask_positions

MODEL_CHOICES = [("stand-in (offline, 6 layers)", STANDIN), (f"{DEFAULT_MODEL} (needs the hub)", DEFAULT_MODEL)]
Q_CHOICES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.2]
METHODS = [("BH", "bh"), ("BY", "by")]
MODES = [("zero", "zero"), ("mean", "mean")]
SITE = "pre"             # the t-test uses pre-GELU values, as in the lecture
CHUNK = 16               # sentences per forward pass while capturing (one progress step each)


def _quiet_load(name):
    """load_mlm without transformers' own progress bar (the panel has one)."""
    from transformers.utils import logging as hf_logging
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load_mlm(name)
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _row(*children):
    """A row of controls that wraps whole controls onto the next line when the notebook is narrow."""
    import ipywidgets as W
    return W.HBox(list(children), layout=W.Layout(flex_flow="row wrap", align_items="center"))


def _label(text: str):
    import ipywidgets as W
    return W.Label(text, layout=W.Layout(margin="0 0.5em 0 1.5em"))


def neuron_set_choices(c: Contrast) -> list[tuple[str, str]]:
    """(label, value) of the neuron-set menu for contrast `c`."""
    return [(f"'{c.a}' neurons ({c.a} > {c.b}, pass FDR)", "a"),
            (f"'{c.b}' neurons ({c.b} > {c.a}, pass FDR)", "b"),
            ("top-k by |t| (k below)", "topk"),
            (f"random, as many as the '{c.a}' neurons (control)", "random_a"),
            (f"random, as many as the '{c.b}' neurons (control)", "random_b")]


def model_note(label: str) -> str:
    """One line saying which model this is, loud when it is not bert-base-uncased."""
    if label == STANDIN:
        return (f"the kit's offline stand-in (a small 6-layer BERT), <b>not {DEFAULT_MODEL}</b>: "
                f"numbers differ from the lecture's")
    if label == DEFAULT_MODEL:
        return "the lecture's model"
    return f"not {DEFAULT_MODEL}"


@dataclass
class ExplorerResult:
    """What the panel shows after one refresh."""

    model: str
    contrast: Contrast
    layer: int
    q: float
    method: str
    neuron_set: str                 # "a", "b", "topk", "random_a", "random_b"
    neurons: np.ndarray             # indices of the ablated neurons
    mode: str                       # "zero" or "mean"
    sentence: str
    part1: Part1
    before: np.ndarray | None = None    # [n_masks, 2] logits of (a, b) at each [MASK], nothing ablated
    after: np.ndarray | None = None     # same with the neurons ablated at the [MASK]s
    error: str | None = None            # a readable problem with the sentence (no [MASK], ...)
    words: tuple[str, str] = field(init=False)

    def __post_init__(self):
        self.words = (self.contrast.a, self.contrast.b)

    @property
    def set_label(self) -> str:
        """The ablated set in words: "'her' neurons", "top 20 by |t|", "random, as many as 'her'"."""
        c = self.contrast
        return {"a": f"'{c.a}' neurons", "b": f"'{c.b}' neurons", "topk": f"top {len(self.neurons)} by |t|",
                "random_a": f"random, as many as '{c.a}'", "random_b": f"random, as many as '{c.b}'"}[self.neuron_set]

    @property
    def n_significant(self) -> int:
        return int(self.part1.test.significant.sum())

    def predictions(self, which: str = "before") -> list[str]:
        """The word that wins at each [MASK] ("before" or "after" the ablation)."""
        x = self.before if which == "before" else self.after
        return [] if x is None else [self.words[int(np.argmax(r))] for r in x]

    def summary(self) -> str:
        s = [self.part1.summary(),
             f"ablated: {len(self.neurons)} neurons ({self.set_label}), {self.mode}-ablation at the {MASK}, "
             f"layer {self.layer}"]
        if self.error:
            s.append(f"sentence: {self.error}")
        elif self.before is not None:
            a, b = self.words
            for m, (x, y) in enumerate(zip(self.before, self.after)):
                s.append(f"{MASK} {m + 1}: {a} {x[0]:.2f} -> {y[0]:.2f}, {b} {x[1]:.2f} -> {y[1]:.2f}, "
                         f"{a}-{b} {x[0] - x[1]:+.2f} -> {y[0] - y[1]:+.2f}")
        return "\n".join(s)


class Explorer:
    """The explorer panel. Inject `model` and `tokenizer` (tests, your own model) or let it load one.

    model_name: what to load when no model is given ("stand-in", "bert-base-uncased", a
    folder); default $KIT_MODEL, else bert-base-uncased where the hub answers, else the
    stand-in. loader: function name -> (model, tokenizer), default helpers.load_mlm.
    """

    def __init__(self, model=None, tokenizer=None, model_name: str | None = None, contrast: str = "him_her",
                 layer: int | None = None, sentence: str | None = None, loader=None):
        import ipywidgets as W

        self._loader = loader or _quiet_load
        self._models: dict[str, tuple] = {}
        self._acts: dict[tuple, np.ndarray] = {}     # (model, contrast, layer, site) -> [2 n_pairs, n_neurons]
        self._logits: dict[tuple, np.ndarray] = {}   # (model, sentence, a, b) -> clean logits [n_masks, 2]
        self._contrasts: dict[str, Contrast] = {}
        self._hold = False
        self._seed = 0
        self.n_captures = 0        # forward passes over a whole contrast set (the expensive part)
        self.n_draws = 0
        self.result: ExplorerResult | None = None
        self.last_png: bytes | None = None
        self.message = ""          # the last message shown in the panel ("" when all is well)

        startup_note = ""
        if model is not None:
            if tokenizer is None:
                raise ValueError("Explorer(model=...) also needs tokenizer=...")
            name = model_label(model)
        else:
            name = model_name or os.environ.get(ENV_VAR) or None
            try:
                model, tokenizer = self._loader(name)
            except Exception as e:  # e.g. bert-base-uncased asked for but offline
                if name == STANDIN:
                    raise
                startup_note = f"Could not load {name!r} ({e}); using the {STANDIN} instead."
                model, tokenizer = self._loader(STANDIN)
            name = model_label(model)
        self._models[name] = (model, tokenizer)
        self._name = name

        self._contrast = self._get_contrast(contrast)
        style = {"description_width": "initial"}
        wide = W.Layout(width="98%")
        options = list(MODEL_CHOICES)
        if name not in [v for _, v in options]:
            options.insert(0, (name, name))
        self.w_model = W.Dropdown(options=options, value=name, description="model", style=style)
        self.w_contrast = W.Dropdown(options=self._contrast_options(contrast), value=contrast,
                                     description="contrast", style=style)
        n = n_layers(model)
        self.w_layer = W.IntSlider(value=default_layer(model) if layer is None else layer, min=0, max=n - 1,
                                   description="layer", style=style, continuous_update=False)
        self.w_q = W.SelectionSlider(options=Q_CHOICES, value=0.05, description="FDR q", style=style,
                                     continuous_update=False)
        compact = {"description_width": "initial", "button_width": "5em"}
        self.w_method = W.ToggleButtons(options=METHODS, value="bh", style=compact,
                                        layout=W.Layout(width="auto", flex="0 0 auto"))
        self.w_set = W.Dropdown(options=neuron_set_choices(self._contrast), value="b", description="ablate",
                                style=style, layout=W.Layout(width="30em"))
        width = n_neurons(model, self.w_layer.value)
        self.w_k = W.IntSlider(value=min(20, width), min=1, max=width, description="k", style=style,
                               continuous_update=False)
        self.w_reseed = W.Button(description="new random draw", layout=W.Layout(width="15em"))
        self.w_mode = W.ToggleButtons(options=MODES, value="zero", style=compact,
                                      layout=W.Layout(width="auto", flex="0 0 auto"))
        self.w_sentence = W.Text(value=sentence or self._default_sentence(), description="sentence",
                                 placeholder=f"a sentence with {MASK}, e.g. She thanked {MASK} for the help.",
                                 style=style, layout=wide, continuous_update=False)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="16em"))
        self.progress_label = W.Label(value="")
        self.header = W.HTML()
        self.status = W.HTML()
        self.out = W.Output(layout=W.Layout(min_height="300px"))
        self.summary = W.HTML()

        for w in (self.w_layer, self.w_q, self.w_method, self.w_set, self.w_k, self.w_mode, self.w_sentence):
            w.observe(self.on_change, names="value")
        self.w_model.observe(self.on_model, names="value")
        self.w_contrast.observe(self.on_contrast, names="value")
        self.w_reseed.on_click(self.on_reseed)
        self._startup_note = startup_note
        self._sync_k_visibility()
        self._set_header()

        self.ui = W.VBox([
            self.header,
            _row(self.w_model, self.w_contrast, self.w_layer),
            _row(self.w_q, _label("FDR method"), self.w_method, _label("ablation"), self.w_mode),
            _row(self.w_set, self.w_k, self.w_reseed),
            self.w_sentence,
            W.HBox([self.progress, self.progress_label]),
            self.status,
            self.out,
            self.summary,
        ], layout=W.Layout(width="100%"))

    # ---- showing -------------------------------------------------------------------------
    def _ipython_display_(self):
        self.show()

    def show(self):
        """Display the panel, then compute and draw (the progress bar shows the capture)."""
        from IPython.display import display
        display(self.ui)
        self.refresh()

    # ---- properties ----------------------------------------------------------------------
    @property
    def model(self):
        return self._models[self._name][0]

    @property
    def tokenizer(self):
        return self._models[self._name][1]

    @property
    def contrast(self) -> Contrast:
        return self._contrast

    # ---- callbacks -----------------------------------------------------------------------
    def on_change(self, change=None):
        """Any control that needs no reloading: layer, q, method, neuron set, k, mode, sentence."""
        if change is not None and change.get("owner") is self.w_set:
            self._sync_k_visibility()
        if not self._hold:
            self.refresh()

    def on_reseed(self, button=None):
        """Draw a new random neuron set (the button shows only while a random set is chosen)."""
        if not str(self.w_set.value).startswith("random"):
            return
        self._seed += 1
        if not self._hold:
            self.refresh()

    def on_contrast(self, change):
        """New contrast set: relabel the neuron-set menu; swap the sentence if it was the default one."""
        if self._hold:
            return
        old = self._contrast
        try:
            new = self._get_contrast(change["new"])
        except StimulusError as e:
            self._say(str(e), "error")
            with self._holding():
                self.w_contrast.value = change["old"]
            return
        with self._holding():
            self._contrast = new
            keep = self.w_set.value
            self.w_set.options = neuron_set_choices(new)
            self.w_set.value = keep
            if self.w_sentence.value.strip() in self._default_sentences(old):
                self.w_sentence.value = self._default_sentence()
        self.refresh()

    def on_model(self, change):
        """Load the chosen model (once); if it cannot be loaded here, say why and keep the current one."""
        if self._hold:
            return
        name, old = change["new"], change["old"]
        if name not in self._models:
            last = self.progress_label.value
            self._busy(f"loading {name} ...")
            try:
                self._models[name] = self._loader(name)
            except Exception as e:
                self._idle(last)
                why = getattr(e, "reason", str(e))      # the panel gives its own advice below
                self._say(f"Cannot use <b>{html.escape(name)}</b> here: {html.escape(why)}<br>"
                          f"Still showing <b>{html.escape(old)}</b>. Offline, choose the {STANDIN} "
                          f"(or set {ENV_VAR}={STANDIN}).", "error", escape=False)
                with self._holding():
                    self.w_model.value = old
                return
            self._idle("")
        self._name = name
        model = self.model
        with self._holding():
            self.w_layer.max = n_layers(model) - 1
            self.w_layer.value = default_layer(model)
            width = n_neurons(model, self.w_layer.value)
            self.w_k.max = width
            self.w_k.value = min(self.w_k.value, width)
        self._set_header()
        self.refresh()

    # ---- computing -----------------------------------------------------------------------
    def refresh(self) -> ExplorerResult | None:
        """Recompute from the control values, redraw the figure and the numbers."""
        self._say("")
        try:
            res = self._compute()
        except Exception as e:  # show it in the panel; a class must not lose the whole widget
            self._idle("")
            self._say(f"{type(e).__name__}: {e}", "error")
            return None
        if res.error:
            self._say(res.error, "error")
        self.result = res
        self._draw(res)
        self.summary.value = self._summary_html(res)
        return res

    def _compute(self) -> ExplorerResult:
        c, layer = self._contrast, int(self.w_layer.value)
        acts = self._activations(c, layer, SITE)
        n = len(c.pairs)
        test = paired_ttest_fdr(acts[:n], acts[n:], q=float(self.w_q.value), method=self.w_method.value)
        p1 = Part1(model_label(self.model), c, layer, SITE, acts[:n], acts[n:], test)
        neurons = self._neurons(p1)
        res = ExplorerResult(self._name, c, layer, float(self.w_q.value), self.w_method.value, self.w_set.value,
                             neurons, self.w_mode.value, self.w_sentence.value, p1)
        text, problem = self._check_sentence(self.w_sentence.value)
        if problem:
            res.error = problem
            return res
        try:
            res.before = self._clean_logits(text, c)
            values = self._activations(c, layer, "post").mean(0) if res.mode == "mean" else None
            pos = mask_positions(self.tokenizer, [text])
            with ablate_neurons(self.model, layer, neurons, positions=pos, mode=res.mode, values=values,
                                verbose=False):
                res.after = masked_logits(self.model, self.tokenizer, [text], [c.a, c.b])[0]
        except StimulusError as e:
            res.error = str(e)
            res.before = res.after = None
        return res

    def _activations(self, c: Contrast, layer: int, site: str) -> np.ndarray:
        """Values at the target word of every sentence (a sentences, then b): [2 n_pairs, n_neurons].

        Cached per (model, contrast, layer, site); a miss captures every layer in one pass.
        """
        key = (self._name, c.name, layer, site)
        if key not in self._acts:
            from .hooks import mlp_activations
            sents = c.sentences_a + c.sentences_b
            words = [c.a] * len(c.pairs) + [c.b] * len(c.pairs)
            layers = list(range(n_layers(self.model)))
            chunks = [range(i, min(i + CHUNK, len(sents))) for i in range(0, len(sents), CHUNK)]
            parts: dict[int, list] = {L: [] for L in layers}
            self._busy(f"computing {site}-GELU activations: {c.name}, {len(sents)} sentences, "
                       f"{self._name}", len(chunks))
            for i, idx in enumerate(chunks):
                got = mlp_activations(self.model, self.tokenizer, [sents[j] for j in idx], [words[j] for j in idx],
                                      layers, site=site, progress=False)
                for L in layers:
                    parts[L].append(got[L])
                self.progress.value = i + 1
            for L in layers:
                self._acts[(self._name, c.name, L, site)] = np.concatenate(parts[L])
            self.n_captures += 1
            self._idle(f"activations ready ({self._name}, {c.name}, all {len(layers)} layers, {site}-GELU)")
        return self._acts[key]

    def _clean_logits(self, text: str, c: Contrast) -> np.ndarray:
        key = (self._name, text, c.a, c.b)
        if key not in self._logits:
            self._logits[key] = masked_logits(self.model, self.tokenizer, [text], [c.a, c.b])[0]
        return self._logits[key]

    def _neurons(self, p1: Part1) -> np.ndarray:
        """Indices of the neurons to ablate for the chosen set."""
        t, test, kind = p1.test.t, p1.test, self.w_set.value
        if kind == "a":
            return np.flatnonzero(test.positive)
        if kind == "b":
            return np.flatnonzero(test.negative)
        if kind == "topk":
            score = np.nan_to_num(np.abs(t), nan=-1.0)
            return np.sort(np.argsort(-score, kind="stable")[: int(self.w_k.value)])
        if kind in ("random_a", "random_b"):
            ref = test.positive if kind == "random_a" else test.negative
            # as many neurons, drawn from the whole layer (as controls.lesion_test's default pool="all"):
            # drawing only outside the set would, for a set of half the layer, pick the other set
            rng = np.random.default_rng([self._seed, p1.layer])
            return np.sort(rng.choice(ref.size, size=int(ref.sum()), replace=False))
        raise ValueError(f"unknown neuron set {kind!r}")

    def _check_sentence(self, text: str) -> tuple[str, str | None]:
        """The sentence with [mask] spelled as the tokenizer's mask token, or a readable problem."""
        text = re.sub(r"\[mask\]", self.tokenizer.mask_token, (text or "").strip(), flags=re.I)
        if not text:
            return text, f"Type a sentence with {MASK} where the word to predict goes."
        if self.tokenizer.mask_token not in text:
            return text, (f"Your sentence has no {MASK}: \u201c{text}\u201d. Put {MASK} where the word to predict "
                          f"goes, e.g. \u201c{self._default_sentence()}\u201d")
        n, most = len(self.tokenizer(text, verbose=False)["input_ids"]), max_tokens(self.model)
        if most is not None and n > most:
            return text, (f"Your sentence is {n} tokens long; {model_label(self.model)} reads at most {most}. "
                          f"Shorten it.")
        return text, None

    # ---- drawing -------------------------------------------------------------------------
    def _draw(self, res: ExplorerResult) -> None:
        from IPython.display import Image, clear_output, display
        import warnings
        fig = self.figure(res)
        buf = io.BytesIO()
        with warnings.catch_warnings():   # a character the font lacks (an emoji in the sentence) is drawn as a box
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(buf, format="png", dpi=80)
        self.last_png = buf.getvalue()
        with self.out:
            clear_output(wait=True)
            display(Image(data=self.last_png, format="png"))
        self.n_draws += 1

    def figure(self, res: ExplorerResult | None = None):
        """The panel's figure for `res` (default: the last result): t-values on top, logits below."""
        from matplotlib.figure import Figure
        res = res or self.result
        fig = Figure(figsize=(11, 7.6), layout="constrained")
        ax_t, ax_l = fig.subplots(2, 1, height_ratios=[1, 1])
        tvalues(res.part1, ax=ax_t)
        t = res.part1.test.t
        if len(res.neurons):
            ax_t.plot(res.neurons, t[res.neurons], "o", mfc="none", mec="k", ms=9, mew=1.2,
                      label=f"ablated ({len(res.neurons)})")
        ax_t.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)   # outside: no point hidden
        ax_t.title.set_fontsize(10)
        self._draw_logits(ax_l, res)
        return fig

    def _draw_logits(self, ax, res: ExplorerResult) -> None:
        a, b = res.words
        if res.before is None:
            ax.set_axis_off()
            ax.text(0.5, 0.5, res.error or "no sentence", ha="center", va="center", wrap=True, fontsize=11,
                    color="#b00020", transform=ax.transAxes)
            return
        colors = [COLORS["a"], COLORS["b"]]
        ticks, labels = [], []
        for m in range(len(res.before)):
            for s, (vals, when) in enumerate(((res.before, "before"), (res.after, "after"))):
                x0 = m * 3.2 + s * 1.2
                for k in range(2):
                    ax.bar(x0 + (k - 0.5) * 0.5, vals[m, k], width=0.46, color=colors[k], edgecolor="k", lw=0.5,
                           hatch="//" if when == "after" else None, alpha=1 if when == "before" else 0.75,
                           label=f"logit of '{(a, b)[k]}'" if (m, s) == (0, 0) else None)
                    ax.text(x0 + (k - 0.5) * 0.5, vals[m, k], f"{vals[m, k]:.2f}", ha="center",
                            va="bottom" if vals[m, k] >= 0 else "top", fontsize=8)
                ticks.append(x0)
                win = (a, b)[int(np.argmax(vals[m]))]
                labels.append(f"{MASK} {m + 1} {when}\n'{win}' wins by {abs(vals[m, 0] - vals[m, 1]):.2f}")
        ax.set_xticks(ticks, labels, fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("logit at the [MASK]")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        sent = res.sentence if len(res.sentence) < 110 else res.sentence[:107] + "..."
        spelled = re.sub(r"\[mask\]", MASK, res.sentence.strip(), flags=re.I)
        expected = dict(res.contrast.tests).get(spelled)
        quote = f"\u201c{sent}\u201d" + (f"  (expected: '{expected}')" if expected else "")
        ax.set_title(f"{res.part1.model_label}, layer {res.layer}: {res.mode}-ablating {len(res.neurons)} "
                     f"neurons ({res.set_label}) at the {MASK}\n{quote}", fontsize=10)
        ax.margins(y=0.12)

    def _summary_html(self, res: ExplorerResult) -> str:
        e = html.escape
        rows = [f"<div>{e(res.part1.summary())}</div>",
                f"<div>Ablated: <b>{len(res.neurons)}</b> neurons ({e(res.set_label)}), "
                f"{e(res.mode)}-ablation at the {MASK}.</div>"]
        if res.before is not None:
            a, b = res.words
            head = (f"<tr><th>{MASK}</th><th>logit '{e(a)}'</th><th>logit '{e(b)}'</th>"
                    f"<th>{e(a)} − {e(b)}</th><th>prediction</th></tr>")
            body = ""
            pb, pa = res.predictions("before"), res.predictions("after")
            for m, (x, y) in enumerate(zip(res.before, res.after)):
                body += (f"<tr><td>{m + 1}</td><td>{x[0]:.2f} → {y[0]:.2f}</td><td>{x[1]:.2f} → {y[1]:.2f}</td>"
                         f"<td>{x[0] - x[1]:+.2f} → {y[0] - y[1]:+.2f}</td><td>{e(pb[m])} → {e(pa[m])}</td></tr>")
            rows.append(f"<table style='border-collapse:collapse' cellpadding='4'>{head}{body}</table>")
        return "".join(rows)

    # ---- small helpers -------------------------------------------------------------------
    @contextmanager
    def _holding(self):
        """Change widgets from code without each change triggering a refresh."""
        old, self._hold = self._hold, True
        try:
            yield
        finally:
            self._hold = old

    def _get_contrast(self, name: str) -> Contrast:
        if name not in self._contrasts:
            self._contrasts[name] = load_contrast(name)
        return self._contrasts[name]

    @staticmethod
    def _contrast_options(current: str) -> list[str]:
        names = list_contrasts()
        return names if current in names else [current] + names

    def _default_sentences(self, c: Contrast) -> set[str]:
        """Sentences the panel offered for `c` (its test lines, or the one made from its first pair)."""
        return {t for t, _ in c.tests} | {self._default_sentence(c)}

    def _default_sentence(self, c: Contrast | None = None) -> str:
        c = c or self._contrast
        return c.tests[0][0] if c.tests else f"{c.sentences_b[0].replace(c.b, MASK, 1)}"

    def _sync_k_visibility(self) -> None:
        self.w_k.layout.display = "" if self.w_set.value == "topk" else "none"
        self.w_reseed.layout.display = "" if str(self.w_set.value).startswith("random") else "none"

    def _set_header(self) -> None:
        label = model_label(self.model)
        self.header.value = (f"<div style='font-size:1.15em;padding:4px 0'>Model: <b>{html.escape(label)}</b> "
                             f"&mdash; {model_note(label)} ({n_layers(self.model)} layers, "
                             f"{n_neurons(self.model, 0)} MLP neurons per layer)</div>")
        if self._startup_note:
            self.header.value += f"<div style='color:#9a6700'>{html.escape(self._startup_note)}</div>"
            self._startup_note = ""

    def _busy(self, text: str, steps: int = 1) -> None:
        self.progress.max = max(1, steps)
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.progress_label.value = text

    def _idle(self, text: str) -> None:
        self.progress.value = self.progress.max
        self.progress.bar_style = "success"
        self.progress_label.value = text

    def _say(self, text: str, kind: str = "info", escape: bool = True) -> None:
        """Show a message in the panel (kind: info, warn, error); "" clears it."""
        self.message = html.unescape(re.sub(r"<br>", " ", re.sub(r"<(?!br>)[^>]+>", "", text))) if not escape else text
        if not text:
            self.status.value = ""
            return
        color = {"info": "#1a5fb4", "warn": "#9a6700", "error": "#b00020"}[kind]
        body = html.escape(text) if escape else text
        self.status.value = f"<div style='color:{color};padding:4px 0'>{body}</div>"
