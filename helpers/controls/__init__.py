"""Controls that make a lesion result believable (notebook 04): the names of its submodules.

    nulls      lesion_test (chosen set vs random sets of its size), compare_modes, permutation_p,
               random_neuron_sets, Ablator (model-backed, via helpers.fast), AdditiveAblator (ground truth),
               draws_text; p-values are sequential (draws: up to n_draws random sets, stopped once STOP_AT
               of them reach the chosen set's drop; stop_at=None for a fixed n)
    selection  pronoun_selection / mask_selection, compare_criteria, heldout_selection, set_overlap
    sweeps     dose_response, layer_sweep, heldout_lesion
    context    context_pairs / write_context_contrast (data/contrasts/him_her_context.tsv)
The [MASK] evaluation sets (EvalSet, cloze_set, masked_set, mask_word) are helpers.stimuli's; the neuron selection
(select_neurons, Selection) is helpers.selection's; ablation_values is helpers.lesion's.
"""
from .context import CONTEXT_CLAUSES, CONTEXT_FEMALE, CONTEXT_MALE, context_pairs, write_context_contrast
from .draws import STOP_AT
from .nulls import (POOL_WARN, Ablator, AdditiveAblator, LesionResult, as_mask, compare_modes, draws_text,
                    lesion_test, lesion_test_with, permutation_p, random_neuron_sets, resample_donors)
from .selection import (MIN_HELDOUT, Criteria, HeldOut, Overlap, compare_criteria, heldout_selection, jaccard,
                        kfold_pairs, mask_selection, mean_pairwise_jaccard, pronoun_selection, set_overlap)
from .sweeps import (DoseResponse, HeldOutLesion, LayerSweep, dose_response, dose_response_with, heldout_lesion,
                     layer_sweep, log_grid)

__all__ = ["CONTEXT_CLAUSES", "CONTEXT_FEMALE", "CONTEXT_MALE", "context_pairs",
           "write_context_contrast", "POOL_WARN", "Ablator", "AdditiveAblator", "LesionResult", "as_mask",
           "compare_modes", "draws_text", "STOP_AT", "lesion_test", "lesion_test_with", "permutation_p",
           "random_neuron_sets", "resample_donors", "MIN_HELDOUT", "Criteria", "HeldOut", "Overlap", "compare_criteria",
           "heldout_selection", "jaccard", "kfold_pairs", "mask_selection", "mean_pairwise_jaccard",
           "pronoun_selection", "set_overlap", "DoseResponse", "HeldOutLesion", "LayerSweep", "dose_response",
           "dose_response_with", "heldout_lesion", "layer_sweep", "log_grid"]
