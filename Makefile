# `make demo` and `make test` work on a fresh machine: they create (or reuse) .venv and
# install what they need from this project's own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The exact torch build the project is tested with (a CPU wheel); the package's own
# `torch` extra keeps a lenient lower bound.
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed
# Framework integrations (extensions/<name>/, each its own distribution), installed for the tests.
EXTENSIONS := $(sort $(dir $(wildcard extensions/*/pyproject.toml)))

.PHONY: demo test typecheck venv proto clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile $(addsuffix pyproject.toml,$(EXTENSIONS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq "$(TORCH)"
	$(PY) -m pip install -qq -e ".[dev,examples]" $(foreach e,$(EXTENSIONS),-e "$(e)[test]") "$(TORCH)"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fedlab.demo

test: $(STAMP)
	@# The browser tests drive Debian's Chromium (playwright never downloads a browser).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@# The Kubernetes manifests are rendered with Debian's kubectl (`kubectl kustomize`).
	command -v kubectl >/dev/null || (apt-get update -qq && apt-get install -y -qq kubernetes-client)
	$(PY) -m mypy
	@# Each framework extension runs in its own pytest process: TensorFlow, once loaded,
	@# makes TenSEAL (the CKKS tests of the core) crash the interpreter, and a framework's
	@# global state should not reach another's tests.
	$(PY) -m pytest -q tests fedlab
	@status=0; for e in $(EXTENSIONS); do echo "== $$e"; $(PY) -m pytest -q $$e || status=1; done; exit $$status

typecheck: $(STAMP)
	$(PY) -m mypy

proto: $(STAMP)
	$(PY) scripts/generate_proto.py

clean:
	rm -rf $(VENV) build *.egg-info
