# fewmul: `make demo` runs the whole pipeline, `make test` runs the tests,
# `make docs` builds the documentation into build/docs.
# All three create .venv from pyproject.toml when it is missing or stale.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench clean venv data docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/fewmul demo -o build/demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The Sphinx site (docs/, MyST pages and the API reference generated from the
# docstrings); any warning fails the build.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs build/docs

# Fashion-MNIST from the Debian package (apt) when missing; MNIST is fetched
# separately with `fewmul data mnist --download` (checksums verified).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

data: $(STAMP)
	@test -f $(FASHION_MNIST) || { \
	  echo "installing dataset-fashion-mnist (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y dataset-fashion-mnist; \
	  else sudo apt-get install -y dataset-fashion-mnist; fi; }
	$(BIN)/fewmul data fashion-mnist

clean:
	rm -rf build .pytest_cache
