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
# fastai requires torchvision, but PyPI's torchvision wheels are CUDA builds that fail to
# import beside the CPU torch ("operator torchvision::nms does not exist"), and a broken
# torchvision also breaks `import lightning` (torchmetrics imports it when installed).
# fedlab-fastai uses no torchvision, so it and fastai come without their requirements,
# followed by those fastai's core, data and learner modules need.
NO_DEPS := extensions/fastai/
FASTAI := fastai==2.8.12
FASTAI_NEEDS := fastcore fasttransform fastprogress fastdownload plum-dispatch cloudpickle matplotlib pandas pillow pyyaml requests scipy scikit-learn

.PHONY: demo test typecheck venv proto clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile $(addsuffix pyproject.toml,$(EXTENSIONS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq "$(TORCH)"
	$(PY) -m pip install -qq -e ".[dev,examples]" $(foreach e,$(filter-out $(NO_DEPS),$(EXTENSIONS)),-e "$(e)[test]") "$(TORCH)"
	$(PY) -m pip install -qq --no-deps -e extensions/fastai "$(FASTAI)"
	$(PY) -m pip install -qq $(FASTAI_NEEDS) "$(TORCH)"
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
