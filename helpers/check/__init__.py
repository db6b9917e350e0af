"""Checks for the exercises: each runs your function on small inputs against the kit's own answer, on the
same model, and says in one line that it passed or which mistake it found.

    (a) target_position(fn, tokenizer)          notebook 01: the target word's token index
    (b) capture_mlp(fn, model, tokenizer)       notebook 01: a capture hook on the MLP expansion layer
    (c) paired_test(fn)                         notebook 01: the paired t-test and the BH mask
    (d) mask_logit_diff(fn, model, tokenizer)   notebook 02: logit(expected) - logit(other) at a [MASK]
    (e) ablated_logit_diff(fn, model, tok)      notebook 03: zero neurons at the [MASK] only
    (f) random_null(random_sets, permutation_p) notebook 04: random-neuron null and the permutation p
    (g) heldout(fn)                             notebook 04: select on some pairs, lesion on others
    (h) own_contrast(fn, model, tokenizer)      notebook 06: a contrast file of your own (fn returns its text; a text or path works too)
    remove_hooks(model)                         take off hooks an earlier (failed) run left behind
"""
from ._report import Mistake, NotDone, StudentError  # noqa: F401
from .contrasts import own_contrast  # noqa: F401
from .controls import heldout, random_null  # noqa: F401
from .find import capture_mlp, paired_test, target_position  # noqa: F401
from .lesion import ablated_logit_diff, remove_hooks  # noqa: F401
from .predict import mask_logit_diff  # noqa: F401
