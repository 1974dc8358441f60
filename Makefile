# Two commands do all set-up on a fresh machine:
#   make demo   the main job, on the embedded default model (pulls Qwen2.5-Coder-0.5B once)
#   make test   the test suite (SmolLM2 only)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.collm-installed

.PHONY: demo test bench benchmarks-md clean-venv

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/collm models pull qwen2.5-coder-0.5b
	$(VENV)/bin/collm demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -rs

bench: $(STAMP)
	$(PY) bench/throughput.py

# BENCHMARKS.md gathers the result files each bench/ script writes
benchmarks-md:
	{ cat bench/BENCHMARKS.head.md; for f in bank allocation arithmetic_check pilot_fit top_k strategies serve throughput live rounds engine upstream_bank; do \
	    sed 's/^#/##/' bench/results/$$f.md; echo; done; } > BENCHMARKS.md

clean-venv:
	rm -rf $(VENV)
