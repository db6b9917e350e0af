"""Explore it yourself: one ipywidgets panel over the whole lecture (notebook 05).

    state   Settings, Session.compute(settings) -> ExplorerResult   (no widgets: tests drive it directly)
    figure  figure(result)                                          (matplotlib only)
    panel   Explorer: the ipywidgets controls over a Session
"""
from .figure import figure  # noqa: F401
from .panel import Explorer, model_note, word_choices  # noqa: F401
from .state import ExplorerResult, Session, Settings, default_sentence  # noqa: F401
