# eegkit: two commands do everything on a fresh clone.
#   make report   set up .venv, write the synthetic twin if no real data is
#                 configured ($EEGKIT_DATA or report/params.yaml), run the numbered
#                 notebooks with papermill (skipping those up to date; FORCE=1 runs all);
#                 figures and tables land in figures/, the PDFs in report/, and the
#                 tables of docs/*.md are rewritten from figures/*.csv
#   make test     set up .venv, run the library tests and every notebook under nbmake
#                 with small parameters (tests/notebook_params.yaml)
#   make lab      set up .venv and start JupyterLab on notebooks/ with its kernel
#
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 (on any of them) installs torch
# 2.13.0 from that PyTorch index (a CUDA 12.8 build) instead of the CPU wheel; .venv
# remembers it. Back to the CPU wheel: rm -rf .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.torch-index
TORCH_INDEX ?=
# The twin is cached here (ignored by git); real data is never copied.
export EEGKIT_CACHE ?= $(CURDIR)/data
# OMP_WAIT_POLICY is left to you: PASSIVE is 4.8x faster per training step on busy
# cores but 15 % slower on idle ones (benchmarks/omp_wait_policy.py,
# docs/performance.md); on a shared machine run `OMP_WAIT_POLICY=PASSIVE make report`.

.PHONY: report docs test lab venv clean FORCE

venv: $(STAMP)

# torch first and pinned: a loose torch pulls a multi-GB CUDA build.
$(STAMP): requirements.txt pyproject.toml $(TORCH_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@index=$$(cat $(TORCH_STAMP)); if [ -n "$$index" ]; then \
		echo "$(PY) -m pip install -q torch==2.13.0+$$(basename $$index) --index-url $$index"; \
		$(PY) -m pip install -q "torch==2.13.0+$$(basename $$index)" --index-url "$$index"; \
	else \
		echo "$(PY) -m pip install -q torch==2.13.0"; \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The PyTorch index torch comes from (empty: the default wheel). Rewritten, which
# reinstalls torch, only when TORCH_INDEX is given and differs from the one recorded.
$(TORCH_STAMP): FORCE
	@mkdir -p $(VENV) && [ -e $@ ] || touch -d @0 $@   # old: an existing .venv stays valid
	@if [ -n "$(TORCH_INDEX)" ] && [ "$$(cat $@)" != "$(TORCH_INDEX)" ]; then \
		echo "$(TORCH_INDEX)" > $@; fi

report: $(STAMP)
	MPLBACKEND=Agg $(PY) -m eegkit.pipeline run --params report/params.yaml --out build/notebooks $(if $(FORCE),--force)
	$(PY) -m eegkit.pipeline report --params report/params.yaml
	$(PY) -m eegkit.report.docs_tables

# The tables of docs/*.md, rewritten from figures/*.csv (make report does it too).
docs: $(STAMP)
	$(PY) -m eegkit.report.docs_tables

test: $(STAMP)
	$(PY) -m eegkit.pipeline render --params tests/notebook_params.yaml --out build/nbmake
	env -u EEGKIT_DATA EEGKIT_CACHE=$(CURDIR)/build/cache MPLBACKEND=Agg \
		$(PY) -m pytest build/nbmake tests --nbmake   # notebooks first: a test builds the PDFs from their results

# JupyterLab on notebooks/: the kernel is this .venv's Python (the notebooks' "python3"),
# and a py:percent file opens as a notebook on double click (jupytext's extension, made
# the default viewer of Python files in .venv's own lab settings, not in ~/.jupyter).
# LAB_ARGS="--no-browser --port 8890" passes options on.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
lab: $(STAMP)
	@mkdir -p $(dir $(LAB_SETTINGS))
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' > $(LAB_SETTINGS)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

clean:
	rm -rf build
