# fewmul: `make demo` runs the whole pipeline, `make test` runs the tests,
# `make docs` builds the documentation into build/docs.
# All three create .venv from pyproject.toml when it is missing or stale.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow fuzz bench clean venv data docs

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

# 1000 random networks in Verilator with random stalls against the golden model; a failure
# prints its seed, replayed with `fewmul fuzz --seed S`. FUZZ_COUNT, FUZZ_START change the range.
FUZZ_COUNT ?= 1000
FUZZ_START ?= 0
fuzz: $(STAMP)
	$(BIN)/fewmul fuzz --count $(FUZZ_COUNT) --start $(FUZZ_START)

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
