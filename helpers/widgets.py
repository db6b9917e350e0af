"""Moved: helpers.explorer (state, figure, panel). This module re-exports it for one release."""
import warnings

from .explorer import Explorer, ExplorerResult, Session, Settings, default_sentence, model_note  # noqa: F401

warnings.warn("helpers.widgets moved to helpers.explorer", DeprecationWarning, stacklevel=2)
