"""Controls that make a lesion result believable (notebook 04). Every name of the old helpers.controls.

    nulls      lesion_test (chosen set vs random sets of its size), compare_modes, permutation_p,
               random_neuron_sets, Ablator (model-backed, via helpers.fast), AdditiveAblator (ground truth)
    selection  pronoun_selection / mask_selection, compare_criteria, heldout_selection, set_overlap
    sweeps     dose_response, layer_sweep, heldout_lesion
    context    context_pairs / write_context_contrast (data/contrasts/him_her_context.tsv)
    [MASK] evaluation sets (EvalSet, cloze_set, masked_set) live in helpers.stimuli and are re-exported here.
"""
from ..lesion import ablation_values
from ..selection import Selection, select_neurons
from ..stimuli import CLOZE, Contrast, EvalSet, cloze_set, mask_word, masked_set
from .context import CONTEXT_CLAUSES, CONTEXT_FEMALE, CONTEXT_MALE, context_pairs, write_context_contrast
from .nulls import (POOL_WARN, Ablator, AdditiveAblator, LesionResult, as_mask, compare_modes, lesion_test,
                    lesion_test_with, permutation_p, random_neuron_sets, resample_donors)
from .selection import (MIN_HELDOUT, Criteria, HeldOut, Overlap, compare_criteria, heldout_selection, jaccard,
                        kfold_pairs, mask_selection, mean_pairwise_jaccard, pronoun_selection, set_overlap)
from .sweeps import (DoseResponse, HeldOutLesion, LayerSweep, dose_response, dose_response_with, heldout_lesion,
                     layer_sweep, log_grid)

word_sign = Contrast.sign     # the old name: word_sign(contrast, word) -> +1 for a, -1 for b

__all__ = ["ablation_values", "Selection", "select_neurons", "CLOZE", "EvalSet", "cloze_set", "mask_word",
           "masked_set", "CONTEXT_CLAUSES", "CONTEXT_FEMALE", "CONTEXT_MALE", "context_pairs",
           "write_context_contrast", "POOL_WARN", "Ablator", "AdditiveAblator", "LesionResult", "as_mask",
           "compare_modes", "lesion_test", "lesion_test_with", "permutation_p", "random_neuron_sets",
           "resample_donors", "MIN_HELDOUT", "Criteria", "HeldOut", "Overlap", "compare_criteria",
           "heldout_selection", "jaccard", "kfold_pairs", "mask_selection", "mean_pairwise_jaccard",
           "pronoun_selection", "set_overlap", "DoseResponse", "HeldOutLesion", "LayerSweep", "dose_response",
           "dose_response_with", "heldout_lesion", "layer_sweep", "log_grid", "word_sign"]
