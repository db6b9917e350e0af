"""Course kit helpers for "Statistical criteria to lesion MLP neurons".

Public API (used by the notebooks and by outside checks):
    load_mlm(name=None, device="auto") -> (model, tokenizer)              helpers.loading
    mlp_activations(model, tok, sentences, target_words, layers, site="pre")
                        -> {layer: ndarray[n_sentences, n_neurons]}   helpers.capture
    paired_ttest_fdr(a, b, q=0.05, method="bh") -> PairedResult       helpers.stats
    ablate_neurons(model, layer, neurons, positions=None, mode="zero")  (context manager)  helpers.lesion
    masked_logits(model, tok, texts, words) -> ndarray[n_texts, n_masks, n_words]   helpers.readout
    load_contrast(name_or_path) -> Contrast                            helpers.stimuli

Layers, from the bottom (a module imports only from layers below it):
    hooks, _args, stats, stimuli     torch hooks; argument checks; statistics; stimuli (no model)
    arch -> loading                  what a model family looks like; loading a model
    capture, readout -> lesion       MLP values; logits; ablation
    selection -> fast                word -> neurons; the fast null
    lecture, controls/               Parts 1-3; the controls of notebook 04
    plots/, explorer/, report, cli   figures; the widget panel; the HTML report; the command lines
    check                            the exercises' checkers
Conventions: README.md, "Conventions" (`positions`, the sign of a lesion, word order, `site`).
"""
from . import capture, hooks, lecture, lesion, loading, plots, readout, stats, stimuli  # noqa: F401
from .capture import contrast_activations, mlp_activations  # noqa: F401
from .hooks import Trace, TraceDict  # noqa: F401
from .lesion import ablate_neurons  # noqa: F401
from .loading import STANDIN, load_mlm  # noqa: F401
from .readout import logits_at, masked_logits  # noqa: F401
from .stats import paired_ttest_fdr  # noqa: F401
from .stimuli import load_contrast, mask_positions, target_positions  # noqa: F401

__all__ = ["load_mlm", "mlp_activations", "paired_ttest_fdr", "ablate_neurons", "masked_logits",
           "load_contrast", "Trace", "TraceDict", "STANDIN", "contrast_activations", "logits_at",
           "mask_positions", "target_positions"]
