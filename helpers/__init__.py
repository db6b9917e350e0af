"""Course kit helpers for "Statistical criteria to lesion MLP neurons".

Public API (used by the notebooks and by outside checks):
    load_mlm(name=None) -> (model, tokenizer)                        helpers.models
    mlp_activations(model, tok, sentences, target_words, layers, site="pre")
                        -> {layer: ndarray[n_sentences, n_neurons]}   helpers.hooks
    paired_ttest_fdr(a, b, q=0.05, method="bh") -> PairedResult       helpers.stats
    ablate_neurons(model, layer, neurons, positions=None, mode="zero")  (context manager)
    masked_logits(model, tok, texts, words) -> ndarray[n_texts, n_masks, n_words]   helpers.lesion
    load_contrast(name_or_path) -> Contrast                            helpers.stimuli
Modules: models, hooks, stimuli, stats, lesion, plots, lecture, controls, fast, widgets, report.
"""
from . import hooks, lecture, lesion, models, plots, stats, stimuli  # noqa: F401
from .hooks import Trace, TraceDict, mlp_activations  # noqa: F401
from .lesion import ablate_neurons, masked_logits  # noqa: F401
from .models import STANDIN, load_mlm  # noqa: F401
from .stats import paired_ttest_fdr  # noqa: F401
from .stimuli import load_contrast  # noqa: F401

__all__ = ["load_mlm", "mlp_activations", "paired_ttest_fdr", "ablate_neurons", "masked_logits",
           "load_contrast", "Trace", "TraceDict", "STANDIN"]
