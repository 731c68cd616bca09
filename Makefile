# make demo / make test create .venv when missing and install everything the project needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch / torchvision pinned to the versions that install from local files here.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/interp-gan demo

test: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

# the inner loop (under a minute on 2 idle cores): everything but tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
