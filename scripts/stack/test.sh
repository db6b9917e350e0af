#!/usr/bin/env bash
# Run the kit's tests, the notebooks and `python -m helpers` in a stack built by build.sh.
#
#   scripts/stack/test.sh NAME [pytest args...]
#
# 1. pytest: by default what `make test` runs (unit tests, checkers, student notebooks, every notebook on a
#    tiny random BERT, and nbval over the committed notebooks: the stack must print the committed outputs).
# 2. Notebook 04 (the fast null's heaviest user) executed by the stack and by the main environment
#    (MAIN_PY, default python3) one after the other, and the ratio of the two times (#19: within 1.5x).
# 3. `python -m helpers` (the lecture's summary).
# Runs in the checkout the stack's editable install points at (KIT_DIR as for build.sh), with the
# stand-in model (KIT_MODEL=stand-in, offline) cached inside the venv (KIT_CACHE), so stacks do not share
# a stand-in built by another transformers version. Logs: $STACK_DIR/NAME/{pytest,nb04,cli}.log.
set -uo pipefail
NAME=${1:?usage: test.sh NAME [pytest args]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
KIT=${KIT_DIR:-$(cd "$HERE/../.." && pwd)}
VENV=${STACK_DIR:-/tmp/kit-stacks}/$NAME
MAIN_PY=${MAIN_PY:-python3}
export KIT_MODEL=stand-in HF_HUB_OFFLINE=1 KIT_CACHE=$VENV/kit-cache
unset MPLBACKEND   # nbval compares the figures' inline outputs: the kernels must draw inline
cd "$KIT"
"$VENV/bin/python" -c "import sys, torch, transformers, numpy, scipy, matplotlib, ipywidgets
print('stack', sys.argv[1], 'python', sys.version.split()[0], 'torch', torch.__version__, 'transformers',
      transformers.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'matplotlib',
      matplotlib.__version__, 'ipywidgets', ipywidgets.__version__)" "$NAME"

start=$(date +%s)
if [ $# -eq 0 ]; then
    set -- tests notebooks --ignore=notebooks/exercises --nbval --nbval-current-env \
        --nbval-sanitize-with tests/nbval_sanitize.cfg
fi
"$VENV/bin/python" -m pytest "$@" -p no:cacheprovider -rfE 2>&1 | tee "$VENV/pytest.log" | tail -60
rc_tests=${PIPESTATUS[0]}
echo "pytest rc=$rc_tests in $(( $(date +%s) - start )) s"

out=$(mktemp -d)
time_nb04() {   # $1: python; prints seconds
    local t0=$(date +%s.%N)
    "$1" scripts/notebooks/execute.py --timeout 900 --output-dir "$out" notebooks/04_controls.ipynb \
        >> "$VENV/nb04.log" 2>&1 || { echo "notebook 04 failed with $1 (see $VENV/nb04.log)" >&2; echo -1; return; }
    echo "$(date +%s.%N) - $t0" | bc
}
: > "$VENV/nb04.log"
t_stack=$(time_nb04 "$VENV/bin/python")
t_main=$(KIT_CACHE= time_nb04 "$MAIN_PY")
ratio=$(echo "scale=2; $t_stack / $t_main" | bc)
echo "notebook 04: ${t_stack%.*} s on $NAME, ${t_main%.*} s on the main environment ($MAIN_PY): ratio $ratio"
rc_nb=$(echo "$t_stack > 0 && $t_main > 0 && $ratio <= 1.5" | bc)
rm -rf "$out"

start=$(date +%s)
"$VENV/bin/python" -m helpers > "$VENV/cli.log" 2>&1
rc_cli=$?
tail -15 "$VENV/cli.log"
echo "python -m helpers rc=$rc_cli in $(( $(date +%s) - start )) s"
exit $(( rc_tests || rc_cli || rc_nb != 1 ))
