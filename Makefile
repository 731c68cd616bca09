# make demo / make test create .venv when missing and install everything the project needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-dynamics test test-fast install clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch / torchvision pinned to the versions that install from local files here.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	# the rest at the versions the suite was last run with (constraints.txt), so a fresh install trains the same demo
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/interp-gan demo

# not part of `make demo`: the demo recipe with step snapshots every 300 steps (0, 300, ..., 1200),
# then the small dynamics pipeline on each (docs/dynamics.md); resumes an unfinished run
demo-dynamics: $(STAMP)
	$(BIN)/interp-gan train training/demo.toml --set train.keep_every=300 --out runs/demo-dynamics \
		$$(test -f runs/demo-dynamics/trainer_state.pt && echo --resume)
	$(BIN)/interp-gan analyze runs/demo-dynamics --over-steps --pipeline analyses/dynamics.toml \
		--out reports/demo-dynamics

# the suite on 2 worker processes (pytest-xdist; each worker gets its share of the cores' torch threads,
# tests/conftest.py); `make test XDIST=` runs it in one process
XDIST ?= -n 2

test: $(STAMP)
	$(BIN)/python -m pytest tests $(XDIST) $(PYTEST_ARGS)

# the inner loop (about 3 minutes on 2 idle cores): everything but tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" $(XDIST) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
