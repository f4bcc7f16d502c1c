# eegkit: two commands do everything on a fresh clone.
#   make report   set up .venv, write the synthetic twin if no real data is
#                 configured ($EEGKIT_DATA or report/params.yaml), run the numbered
#                 notebooks with papermill (skipping those up to date; FORCE=1 runs all);
#                 figures and tables land in figures/, the PDFs in report/
#   make test     set up .venv, run the library tests and every notebook under nbmake
#                 with small parameters (tests/notebook_params.yaml)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The twin is cached here (ignored by git); real data is never copied.
export EEGKIT_CACHE ?= $(CURDIR)/data

.PHONY: report test venv clean

venv: $(STAMP)

# torch first and pinned: a loose torch pulls a multi-GB CUDA build.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

report: $(STAMP)
	MPLBACKEND=Agg $(PY) -m eegkit.pipeline run --params report/params.yaml --out build/notebooks $(if $(FORCE),--force)
	$(PY) -m eegkit.pipeline report --params report/params.yaml

test: $(STAMP)
	$(PY) -m eegkit.pipeline render --params tests/notebook_params.yaml --out build/nbmake
	env -u EEGKIT_DATA EEGKIT_CACHE=$(CURDIR)/build/cache MPLBACKEND=Agg \
		$(PY) -m pytest build/nbmake tests --nbmake   # notebooks first: a test builds the PDFs from their results

clean:
	rm -rf build
