"""The explorer panel: ipywidgets controls over explorer.state (which does the computing).

    Explorer(model=None, tokenizer=None, ...)   the panel; display it (or call .show()) in a notebook
    Explorer.refresh()                         recompute from the controls (state.Session.compute) and redraw
    Explorer.result                            the ExplorerResult on screen (None after a failed refresh)

Controls: model (stand-in / bert-base-uncased), contrast set, layer, FDR q and method, whose neurons
(the contrast's a or b word), which of them (those passing FDR, the top k by t, or as many drawn at
random from the whole layer), ablation mode (zero/mean) and a free-text sentence with [MASK].

Design. Every callback is a plain method (`on_model`, `on_change`, ...), so tests drive the panel by
setting widget values. The figure is drawn on a matplotlib Figure (no pyplot state), rendered to PNG
and shown inside an `ipywidgets.Output` that is cleared first, so changes replace the figure instead of
stacking new ones (Colab: colabtools #3623). Only core ipywidgets, with features common to ipywidgets 7
(Colab's 7.7.1) and 8.
"""
from __future__ import annotations

import html
import io
import os
import re
import warnings
from contextlib import contextmanager

import ipywidgets as W
from IPython.display import Image, clear_output, display
from transformers.utils import logging as hf_logging

from ..arch import default_layer, model_label, n_layers, n_neurons
from ..loading import DEFAULT_MODEL, ENV_VAR, STANDIN, load_mlm
from ..stimuli import MASK, Contrast, StimulusError, list_contrasts
from .figure import figure
from .state import MODES, ExplorerResult, Session, Settings, default_sentence

MODEL_CHOICES = [("stand-in (offline, 6 layers)", STANDIN), (f"{DEFAULT_MODEL} (needs the hub)", DEFAULT_MODEL)]
Q_CHOICES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.2]
KIND_CHOICES = [("pass FDR", "selected"), ("top k by t", "topk"), ("random, as many", "random")]
STYLE = {"description_width": "initial"}
COMPACT = {"description_width": "initial", "button_width": "6.5em"}


def _quiet_load(name):
    """load_mlm without transformers' own progress bar (the panel has one)."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load_mlm(name)
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _row(*children):
    """A row of controls that wraps whole controls onto the next line when the notebook is narrow."""
    return W.HBox(list(children), layout=W.Layout(flex_flow="row wrap", align_items="center"))


def _label(text: str):
    return W.Label(text, layout=W.Layout(margin="0 0.5em 0 1.5em"))


def word_choices(c: Contrast) -> list[tuple[str, str]]:
    """(label, word) of the "whose neurons" menu for contrast `c`, in contrast.words order."""
    return [(f"'{w}' neurons ({w} > {c.foil(w)})", w) for w in c.words]


def model_note(label: str) -> str:
    """One line saying which model this is, loud when it is not bert-base-uncased."""
    if label == STANDIN:
        return (f"the kit's offline stand-in (a small 6-layer BERT), <b>not {DEFAULT_MODEL}</b>: "
                f"numbers differ from the lecture's")
    return "the lecture's model" if label == DEFAULT_MODEL else f"not {DEFAULT_MODEL}"


class Explorer:
    """The explorer panel. Inject `model` and `tokenizer` (tests, your own model) or let it load one.

    model_name: what to load when no model is given ("stand-in", "bert-base-uncased", a
    folder); default $KIT_MODEL, else bert-base-uncased where the hub answers, else the
    stand-in. loader: function name -> (model, tokenizer), default helpers.load_mlm.
    """

    def __init__(self, model=None, tokenizer=None, model_name: str | None = None, contrast: str = "him_her",
                 layer: int | None = None, sentence: str | None = None, loader=None):
        self._loader = loader or _quiet_load
        self._hold = False
        self._seed = 0
        self.n_draws = 0
        self.result: ExplorerResult | None = None
        self.last_png: bytes | None = None
        self.message = ""          # the last message shown in the panel ("" when all is well)
        self._startup_note = ""
        session = self._first_session(model, tokenizer, model_name)
        self._sessions = {session.label: session}
        self._name = session.label
        self._contrast = session.contrast(contrast)
        self._build(contrast, layer, sentence)

    def _first_session(self, model, tokenizer, name) -> Session:
        if model is not None:
            if tokenizer is None:
                raise ValueError("Explorer(model=...) also needs tokenizer=...")
            return Session(model, tokenizer)
        name = name or os.environ.get(ENV_VAR) or None
        try:
            return Session(*self._loader(name))
        except Exception as e:  # e.g. bert-base-uncased asked for but offline
            if name == STANDIN:
                raise
            self._startup_note = f"Could not load {name!r} ({getattr(e, 'reason', e)}); using the {STANDIN} instead."
            return Session(*self._loader(STANDIN))

    def _build(self, contrast: str, layer: int | None, sentence: str | None) -> None:
        """The widgets, their callbacks and the layout."""
        model = self.model
        options = list(MODEL_CHOICES)
        if self._name not in [v for _, v in options]:
            options.insert(0, (self._name, self._name))
        self.w_model = W.Dropdown(options=options, value=self._name, description="model", style=STYLE)
        self.w_contrast = W.Dropdown(options=self._contrast_options(contrast), value=contrast,
                                     description="contrast", style=STYLE)
        self.w_layer = W.IntSlider(value=default_layer(model) if layer is None else layer, min=0,
                                   max=n_layers(model) - 1, description="layer", style=STYLE, continuous_update=False)
        self.w_q = W.SelectionSlider(options=Q_CHOICES, value=0.05, description="FDR q", style=STYLE,
                                     continuous_update=False)
        self.w_method = W.ToggleButtons(options=[("BH", "bh"), ("BY", "by")], value="bh", style=COMPACT,
                                        layout=W.Layout(width="auto", flex="0 0 auto"))
        self.w_word = W.Dropdown(options=word_choices(self._contrast), value=self._contrast.b, description="ablate",
                                 style=STYLE, layout=W.Layout(width="22em"))
        self.w_kind = W.ToggleButtons(options=KIND_CHOICES, value="selected", style=COMPACT,
                                      layout=W.Layout(width="auto", flex="0 0 auto"))
        width = n_neurons(model, self.w_layer.value)
        self.w_k = W.IntSlider(value=min(20, width), min=1, max=width, description="k", style=STYLE,
                               continuous_update=False)
        self.w_reseed = W.Button(description="new random draw", layout=W.Layout(width="15em"))
        self.w_mode = W.ToggleButtons(options=[(m, m) for m in MODES], value="zero", style=COMPACT,
                                      layout=W.Layout(width="auto", flex="0 0 auto"))
        self.w_sentence = W.Text(value=sentence or default_sentence(self._contrast), description="sentence",
                                 placeholder=f"a sentence with {MASK}, e.g. She thanked {MASK} for the help.",
                                 style=STYLE, layout=W.Layout(width="98%"), continuous_update=False)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="16em"))
        self.progress_label = W.Label(value="")
        self.header, self.status, self.summary = W.HTML(), W.HTML(), W.HTML()
        self.out = W.Output(layout=W.Layout(min_height="300px"))
        for w in (self.w_layer, self.w_q, self.w_method, self.w_word, self.w_kind, self.w_k, self.w_mode,
                  self.w_sentence):
            w.observe(self.on_change, names="value")
        self.w_model.observe(self.on_model, names="value")
        self.w_contrast.observe(self.on_contrast, names="value")
        self.w_reseed.on_click(self.on_reseed)
        self._sync_visibility()
        self._set_header()
        self.ui = W.VBox([self.header, _row(self.w_model, self.w_contrast, self.w_layer),
                          _row(self.w_q, _label("FDR method"), self.w_method, _label("ablation"), self.w_mode),
                          _row(self.w_word, self.w_kind, self.w_k, self.w_reseed), self.w_sentence,
                          W.HBox([self.progress, self.progress_label]), self.status, self.out, self.summary],
                         layout=W.Layout(width="100%"))

    # ---- showing -------------------------------------------------------------------------
    def _ipython_display_(self):
        self.show()

    def show(self):
        """Display the panel, then compute and draw (the progress bar shows the capture)."""
        display(self.ui)
        self.refresh()

    @property
    def session(self) -> Session:
        return self._sessions[self._name]

    @property
    def model(self):
        return self.session.model

    @property
    def tokenizer(self):
        return self.session.tokenizer

    @property
    def contrast(self) -> Contrast:
        return self._contrast

    @property
    def n_captures(self) -> int:
        return sum(s.n_captures for s in self._sessions.values())

    def settings(self) -> Settings:
        """The controls' values as one state.Settings."""
        return Settings(self.w_contrast.value, int(self.w_layer.value), float(self.w_q.value), self.w_method.value,
                        self.w_word.value, self.w_kind.value, int(self.w_k.value), self.w_mode.value,
                        self.w_sentence.value, self._seed)

    # ---- callbacks -----------------------------------------------------------------------
    def on_change(self, change=None):
        """Any control that needs no reloading: layer, q, method, word, which neurons, k, mode, sentence."""
        if change is not None and change.get("owner") is self.w_kind:
            self._sync_visibility()
        if not self._hold:
            self.refresh()

    def on_reseed(self, button=None):
        """Draw a new random neuron set (the button shows only while a random set is chosen)."""
        if self.w_kind.value != "random":
            return
        self._seed += 1
        if not self._hold:
            self.refresh()

    def on_contrast(self, change):
        """New contrast set: relabel the word menu; swap the sentence if it was the default one."""
        if self._hold:
            return
        old = self._contrast
        try:
            new = self.session.contrast(change["new"])
        except StimulusError as e:
            self._fail(str(e))
            return
        with self._holding():
            self._contrast = new
            self.w_word.options = word_choices(new)
            self.w_word.value = new.b
            if self.w_sentence.value.strip() in {t for t, _ in old.tests} | {default_sentence(old)}:
                self.w_sentence.value = default_sentence(new)
        self.refresh()

    def on_model(self, change):
        """Load the chosen model (once); if it cannot be loaded here, say why and keep the current one."""
        if self._hold:
            return
        name, old = change["new"], change["old"]
        if name not in self._sessions:
            last = self.progress_label.value
            self._busy(f"loading {name} ...")
            try:
                self._sessions[name] = Session(*self._loader(name))
            except Exception as e:
                self._idle(last)
                self._say(f"Cannot use <b>{html.escape(name)}</b> here: {html.escape(getattr(e, 'reason', str(e)))}"
                          f"<br>Still showing <b>{html.escape(old)}</b>. Offline, choose the {STANDIN} "
                          f"(or set {ENV_VAR}={STANDIN}).", "error", escape=False)
                with self._holding():
                    self.w_model.value = old
                return
            self._idle("")
        self._name = name
        with self._holding():
            self.w_layer.max = n_layers(self.model) - 1
            self.w_layer.value = default_layer(self.model)
            self.w_k.max = n_neurons(self.model, self.w_layer.value)
            self.w_k.value = min(self.w_k.value, self.w_k.max)
        self._set_header()
        self.refresh()

    # ---- computing and drawing -------------------------------------------------------------
    def refresh(self) -> ExplorerResult | None:
        """Recompute from the control values, redraw the figure and the numbers. On an error, the panel says
        so and shows no result (never the previous contrast's)."""
        self._say("")
        captures = self.session.n_captures
        try:
            res = self.session.compute(self.settings(), progress=self._progress)
        except Exception as e:  # show it in the panel; a class must not lose the whole widget
            self._fail(f"{type(e).__name__}: {e}")
            return None
        if self.session.n_captures > captures:
            self._idle(f"activations ready ({self._name}, {self._contrast.name}, all {n_layers(self.model)} layers)")
        if res.error:
            self._say(res.error, "error")
        self._contrast = res.contrast           # as its file reads now (Session.contrast re-reads an edited file)
        self.result = res
        self._draw(res)
        self.summary.value = self._summary_html(res)
        return res

    def _progress(self, done: int, total: int) -> None:
        if done == 1:
            self._busy(f"computing activations: {self._contrast.name}, {self._name}", total)
        self.progress.value = done

    def _fail(self, text: str) -> None:
        """A refresh that could not compute: the message, and nothing stale (no result, figure or numbers)."""
        self._idle("")
        self._say(text, "error")
        self.result = None
        self.last_png = None
        self.summary.value = ""
        with self.out:
            clear_output(wait=False)

    def _draw(self, res: ExplorerResult) -> None:
        fig = figure(res)
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
        """The panel's figure for `res` (default: the last result)."""
        return figure(res or self.result)

    @staticmethod
    def _summary_html(res: ExplorerResult) -> str:
        e = html.escape
        rows = [f"<div style='color:#9a6700'>{e(res.note)}</div>"] if res.note else []
        rows += [f"<div>{e(res.part1.summary())}</div>",
                 f"<div>Ablated: <b>{len(res.neurons)}</b> neurons ({e(res.set_label)}), "
                 f"{e(res.mode)}-ablation at the {MASK}.</div>"]
        if res.before is not None:
            a, b = res.words
            head = (f"<tr><th>{MASK}</th><th>logit '{e(a)}'</th><th>logit '{e(b)}'</th>"
                    f"<th>expected − other</th><th>prediction</th></tr>")
            body = ""
            pb, pa = res.predictions("before"), res.predictions("after")
            for m, (x, y, (w, o, d0, d1)) in enumerate(zip(res.before, res.after, res.diffs())):
                body += (f"<tr><td>{m + 1}</td><td>{x[0]:.2f} → {y[0]:.2f}</td><td>{x[1]:.2f} → {y[1]:.2f}</td>"
                         f"<td>{e(w)}−{e(o)} {d0:+.2f} → {d1:+.2f}</td><td>{e(pb[m])} → {e(pa[m])}</td></tr>")
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

    @staticmethod
    def _contrast_options(current: str) -> list[str]:
        names = list_contrasts()
        return names if current in names else [current] + names

    def _sync_visibility(self) -> None:
        self.w_k.layout.display = "" if self.w_kind.value == "topk" else "none"
        self.w_reseed.layout.display = "" if self.w_kind.value == "random" else "none"

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
