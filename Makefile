# The verbs a newcomer guesses. Every target creates and uses the environment in .venv/.
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed-stamp
PYTHON    ?= python3
SHARED    ?= ../shared
# The demo's Keras cache: project-local, seeded with Fashion-MNIST when ../shared has it,
# so the real keras.datasets loader reads it offline. Without it the demo uses mnist-sample.
KERAS_HOME ?= $(CURDIR)/.keras-cache
export KERAS_HOME

.PHONY: install browser demo test lint bench up clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@if [ -d "$(SHARED)/data/fashion-mnist" ] && [ ! -d "$(KERAS_HOME)/datasets/fashion-mnist" ]; then \
		mkdir -p "$(KERAS_HOME)/datasets/fashion-mnist" && \
		cp "$(SHARED)"/data/fashion-mnist/*.gz "$(KERAS_HOME)/datasets/fashion-mnist/"; fi
	$(VENV)/bin/mnistq demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared api worker

# The dashboard's test drives a real headless Chromium (Debian's package; root on this machine).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: lint browser
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.core
	$(PY) -m bench.predict

up:
	docker compose up --build --scale worker=2

clean:
	rm -rf $(VENV) .keras-cache *.db *.db-wal *.db-shm
