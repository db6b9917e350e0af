"""Moved: helpers.plots.controls. This module re-exports it for one release."""
import warnings

from .plots.controls import (criteria, dose_response, heldout, layer_sweep, lesion_tests, modes,  # noqa: F401
                             null_distribution, selection_comparison)

warnings.warn("helpers.plots_controls moved to helpers.plots.controls", DeprecationWarning, stacklevel=2)
