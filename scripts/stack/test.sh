#!/usr/bin/env bash
# Run the kit's unit tests and `python -m helpers` in a stack built by build.sh.
#
#   scripts/stack/test.sh NAME [pytest args...]     (default: tests)
#
# Runs in the checkout the stack's editable install points at (KIT_DIR as for build.sh), with the
# stand-in model (KIT_MODEL=stand-in, offline) cached inside the venv (KIT_CACHE), so stacks do not share
# a stand-in built by another transformers version. Logs: $STACK_DIR/NAME/{pytest,cli}.log.
set -uo pipefail
NAME=${1:?usage: test.sh NAME [pytest args]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
KIT=${KIT_DIR:-$(cd "$HERE/../.." && pwd)}
VENV=${STACK_DIR:-/tmp/kit-stacks}/$NAME
export KIT_MODEL=stand-in HF_HUB_OFFLINE=1 KIT_CACHE=$VENV/kit-cache MPLBACKEND=Agg
cd "$KIT"
start=$(date +%s)
"$VENV/bin/python" -m pytest "${@:-tests}" -p no:cacheprovider -rfE 2>&1 | tee "$VENV/pytest.log" | tail -60
rc_tests=${PIPESTATUS[0]}
echo "pytest rc=$rc_tests in $(( $(date +%s) - start )) s"
start=$(date +%s)
"$VENV/bin/python" -m helpers > "$VENV/cli.log" 2>&1
rc_cli=$?
tail -15 "$VENV/cli.log"
echo "python -m helpers rc=$rc_cli in $(( $(date +%s) - start )) s"
exit $(( rc_tests || rc_cli ))
