"""Run the numbered notebooks: with papermill for the report, as .ipynb for nbmake.

The notebooks live as jupytext ``py:percent`` files (``notebooks/NN_topic.py``); the
``.ipynb`` files Jupyter, papermill and nbmake need are generated from them into
``build/`` and never committed, so the two cannot drift apart.

A run skips a notebook that is up to date: its source, the parameters injected into
it, the ``eegkit`` code, the input data and the earlier notebooks' results it reads are
what they were at its last successful run (recorded in ``<out>/manifest.json``) and
the files it wrote then still exist.
``--force`` runs everything. Each run also writes ``<figures_dir>/run_info.json``
(data, device, git commit, and when each notebook last ran), which the reports read.

Paths never depend on the folder the command runs in: every path parameter
(``data_dir``, ``figures_dir``, ``checkpoint_dir``) reaches a notebook as an absolute
path. Relative paths in a parameters file are taken from the repository root, those
given with ``-p`` from the current folder (as any path on a command line), and a
notebook's own default (``"../figures"``) from ``notebooks/``; ``~`` is expanded.
A parameter that no notebook declares is an error naming the closest valid one.

Command line (``python -m eegkit.pipeline <command> --help`` lists each one's options)::

    python -m eegkit.pipeline run                                  # make report (report/params.yaml)
    python -m eegkit.pipeline run --force
    python -m eegkit.pipeline run --only 01 -p data_dir=/path/to/ds005589
    python -m eegkit.pipeline report                               # the two PDFs
    python -m eegkit.pipeline report --figures other/ --out other/
    python -m eegkit.pipeline render --params tests/notebook_params.yaml \\
        --out build/nbmake                                           # make test
"""

# This docstring is also the --help text. The modules: params (parameters, rendering),
# fingerprint (what a notebook depends on, the skip decision), runner (running the
# notebooks, run_info.json) and cli (the command line).
from eegkit.pipeline.cli import main
from eegkit.pipeline.fingerprint import (
    CODE_NOT_FINGERPRINTED,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    code_fingerprint,
    data_fingerprint,
    is_up_to_date,
    notebook_inputs,
    read_manifest,
    upstream_files,
)
from eegkit.pipeline.params import (
    CODE_DIR,
    DEFAULT_FIGURES,
    DEFAULT_OUT,
    DEFAULT_PARAMS,
    DEFAULT_REPORT_DIR,
    NOTEBOOKS_DIR,
    PATH_PARAMETERS,
    REPO_DIR,
    RUN_PARAMETERS,
    ParameterError,
    check_params,
    declared_by_notebook,
    declared_parameters,
    list_notebooks,
    parse_overrides,
    read_params,
    render,
    select_notebooks,
    to_ipynb,
)
from eegkit.pipeline.runner import (
    CAPTIONS_WAIT,
    RUN_INFO_NAME,
    NotebookFailed,
    describe_device,
    git_commit,
    run,
)

__all__ = [
    "CAPTIONS_WAIT",
    "CODE_DIR",
    "CODE_NOT_FINGERPRINTED",
    "DEFAULT_FIGURES",
    "DEFAULT_OUT",
    "DEFAULT_PARAMS",
    "DEFAULT_REPORT_DIR",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "NOTEBOOKS_DIR",
    "PATH_PARAMETERS",
    "REPO_DIR",
    "RUN_INFO_NAME",
    "RUN_PARAMETERS",
    "NotebookFailed",
    "ParameterError",
    "check_params",
    "code_fingerprint",
    "data_fingerprint",
    "declared_by_notebook",
    "declared_parameters",
    "describe_device",
    "git_commit",
    "is_up_to_date",
    "list_notebooks",
    "main",
    "notebook_inputs",
    "parse_overrides",
    "read_manifest",
    "read_params",
    "render",
    "run",
    "select_notebooks",
    "to_ipynb",
    "upstream_files",
]
