# Fresh machine: `make test` creates .venv (torch 2.13.0 CPU build, pinned), installs tuco, runs every test
# offline on transformers 5.x (slow tier included), then the invariant tests again on transformers 4.57.
# Inner loop: `make test-fast` (no slow tier, <= 3 min on 2 cores). `make check`: ruff + mypy.
PY ?= python3
VENV ?= .venv
VENV4 ?= .venv-tf4
TORCH_PIN ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: install demo demo-gemma test test-fast test-tf5 test-tf4 check format readme-help findings bench faults clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_PIN)
	$(VENV)/bin/pip install -q -e ".[dev,gemma]"
	$(VENV)/bin/pip install -q scipy sentencepiece protobuf
	# GCG optimisation: nanogcg 0.3 pins transformers<=4.47 in its metadata but runs on 5.x with
	# use_prefix_cache=False (what tuco passes), so it is installed without its pins, last (a later
	# pip install would report the pin it ignores as a resolver conflict).
	$(VENV)/bin/pip install -q --no-deps nanogcg==0.3.0
	touch $@

$(VENV4)/.installed: pyproject.toml
	$(PY) -m venv $(VENV4)
	$(VENV4)/bin/pip install -q --upgrade pip
	$(VENV4)/bin/pip install -q $(TORCH_PIN)
	$(VENV4)/bin/pip install -q "transformers==4.57.*" "peft>=0.17,<0.18" pytest
	$(VENV4)/bin/pip install -q -e .
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/tuco demo --out runs/demo --overwrite

demo-gemma: $(VENV)/.installed
	$(VENV)/bin/tuco demo --pair gemma --out runs/demo-gemma --overwrite

test: check test-tf5 test-tf4

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests -m "not slow" -x

test-tf5: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests

test-tf4: $(VENV4)/.installed
	$(VENV4)/bin/python -m pytest tests/test_invariants.py tests/test_metrics.py tests/test_pair.py tests/test_decomposition.py tests/test_lora_share.py tests/test_compat.py

check: $(VENV)/.installed
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

readme-help: $(VENV)/.installed
	$(VENV)/bin/python docs/readme_help.py README.md

# README.md, docs/findings-demo.md, docs/findings-gemma.md and docs/method.md: the findings blocks, regenerated from docs/findings/*.json
findings: $(VENV)/.installed
	$(VENV)/bin/python docs/findings.py render README.md docs/findings-demo.md docs/findings-gemma.md docs/method.md

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/speed.py --quick

faults: $(VENV)/.installed
	$(VENV)/bin/python bench/faults.py --kills 9

clean:
	rm -rf $(VENV) $(VENV4) .pytest_cache
