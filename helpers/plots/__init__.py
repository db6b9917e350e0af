"""The kit's figures: `plots.lecture` (Parts 1-3), `plots.controls` (notebook 04), `plots.style` (colours,
the p format). `from helpers import plots; plots.tvalues(part1)` keeps working: the lecture's figures are
re-exported here."""
from . import controls, lecture, style  # noqa: F401
from .lecture import ablation_effect, activation_histograms, clean_logits, lecture_figures, tvalues  # noqa: F401
from .style import COLORS, NULL, OBS, word_colour  # noqa: F401
