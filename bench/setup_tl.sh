#!/usr/bin/env bash
# TransformerLens for row (d) of bench/bench.py only, in its own virtualenv (bench/.venv).
# Pinned to 3.9.0: the last line that has HookedEncoder (4.x replaced it by TransformerBridge),
# and it accepts the transformers 5.x installed here. --system-site-packages reuses this
# machine's torch and transformers; whatever pip adds stays inside bench/.venv, so the kit's
# own environment is never changed. Needs PyPI once; bench.py runs offline afterwards.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv --system-site-packages .venv
.venv/bin/pip install -q "transformer-lens==3.9.0"
.venv/bin/python -c "import importlib.metadata as m; print('transformer-lens', m.version('transformer-lens'), '| transformers', m.version('transformers'), '| torch', m.version('torch'))"
