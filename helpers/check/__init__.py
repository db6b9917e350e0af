"""Checks for the exercises: each runs your function on inputs it cannot predict, against the kit's own answer
computed on the same model before your code runs, and prints one line: a pass, the one usual mistake your
answer matches, or where it differs. Whatever your function changes (weights, mode, hooks, settings) is named
as the mistake and put back.

    (a) target_position(fn, tokenizer)          notebook 01: the target word's token index
    (b) capture_mlp(fn, model, tokenizer)       notebook 01: a capture hook on the MLP expansion layer
    (c) paired_test(fn)                         notebook 01: the paired t-test and the BH mask
    (d) mask_logit_diff(fn, model, tokenizer)   notebook 02: logit(expected) - logit(other) at a [MASK]
    (e) ablated_logit_diff(fn, model, tok)      notebook 03: zero neurons at the [MASK] only
    (f) random_null(random_sets, permutation_p) notebook 04: random-neuron null and the permutation p
    (g) heldout(fn)                             notebook 04: select on some pairs, lesion on others
    (h) own_contrast(fn, model, tokenizer)      notebook 06: a contrast file of your own (fn returns its text; a text or path works too)
    remove_hooks(model)                         take off hooks an earlier (failed) run left behind

Set KIT_CHECK_LOG=<file> and every check also appends its outcome to that file as one JSON line
(helpers.grade reads it).
"""
from ._report import CheckFailed, Mistake, NotDone, StudentError  # noqa: F401
from .capture import capture_mlp  # noqa: F401
from .contrasts import own_contrast  # noqa: F401
from .heldout import heldout  # noqa: F401
from .lesion import ablated_logit_diff, remove_hooks  # noqa: F401
from .null import random_null  # noqa: F401
from .position import target_position  # noqa: F401
from .predict import mask_logit_diff  # noqa: F401
from .ttest import paired_test  # noqa: F401
