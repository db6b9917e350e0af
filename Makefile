# The two set-up commands (README): `make lecture` and `make test`. Both install what they need first.
PY ?= python3
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
LECTURE_NOTEBOOKS := $(sort $(wildcard notebooks/0[123]_*.ipynb))
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: install lecture test report bench notebooks clean

# torch: reuse an installed torch; otherwise take 2.13.0 (on the course machines that is the CPU build
# already on disk; an open range would pull a multi-GB CUDA build). Colab keeps its own torch.
install:
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	@$(PY) -m pip install -q -e ".[dev]"

# The whole lecture, offline by default: run notebooks 01-03 into build/notebooks, save the figures,
# print the summary (model, layer, neuron counts, logits before/after).
lecture: install
	@mkdir -p build/notebooks build/figures
	$(PY) -m jupyter nbconvert --to notebook --execute $(LECTURE_NOTEBOOKS) --output-dir build/notebooks --log-level WARN --ExecutePreprocessor.timeout=600
	$(PY) -m helpers --figures build/figures

# Every test: unit tests, then nbval over every committed notebook (outputs must reproduce).
# KIT_MODEL=stand-in: the committed outputs come from the stand-in, named explicitly so that no
# hub check decides what runs.
test: install
	KIT_MODEL=stand-in HF_HUB_OFFLINE=1 $(PY) -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

report: install
	$(PY) -m helpers.report --out build/report.html

bench: install
	$(PY) bench/bench.py

# Re-execute the committed notebooks in place (after changing helpers or the stand-in).
notebooks: install
	KIT_MODEL=stand-in HF_HUB_OFFLINE=1 $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.store_widget_state=True $(NOTEBOOKS)

clean:
	rm -rf build
