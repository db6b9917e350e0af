"""Repository-wide pytest setup.

nbval compares every output stream of a notebook cell. stderr carries progress
bars and library warnings that differ between machines and versions, so it is
left out of the comparison here (stdout, results and errors are still compared).
Figures (image/png) and widget views are not compared by nbval anyway.
"""
import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

try:
    import nbval.plugin as _nbval
except ImportError:  # nbval not installed: plain pytest still works
    _nbval = None

if _nbval is not None:
    _transform = _nbval.transform_streams_for_comparison

    def _without_stderr(outputs):
        kept = [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        return _transform(kept)

    _nbval.transform_streams_for_comparison = _without_stderr
