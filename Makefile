# Fresh machine: `make test` creates .venv (torch 2.13.0 CPU build, pinned), installs tuco, runs the tests
# offline on transformers 5.x, then the invariant tests again on transformers 4.57 (.venv-tf4).
PY ?= python3
VENV ?= .venv
VENV4 ?= .venv-tf4
TORCH_PIN ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: install demo test test-tf5 test-tf4 bench clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_PIN)
	$(VENV)/bin/pip install -q -e ".[dev]"
	# GCG optimisation: nanogcg 0.3 pins transformers<=4.47 in its metadata but runs on 5.x with
	# use_prefix_cache=False (what tuco passes), so it is installed without its pins.
	$(VENV)/bin/pip install -q --no-deps nanogcg==0.3.0
	$(VENV)/bin/pip install -q scipy sentencepiece protobuf
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
	$(VENV)/bin/tuco demo --out runs/demo

test: test-tf5 test-tf4

test-tf5: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests

test-tf4: $(VENV4)/.installed
	$(VENV4)/bin/python -m pytest tests/test_invariants.py tests/test_metrics.py tests/test_pair.py

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/speed.py --quick

clean:
	rm -rf $(VENV) $(VENV4) .pytest_cache
