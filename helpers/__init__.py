"""Helpers for the course kit 'Statistical criteria to lesion MLP neurons'."""
from .models import STANDIN, load_mlm  # noqa: F401
