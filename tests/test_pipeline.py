"""The notebook pipeline: parameters, runs, run records and the up-to-date decision.

The skip logic is tested on fake notebooks, code and data, plus one tiny real run
of two trivial notebooks.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from eegkit.pipeline import (
    DEFAULT_FIGURES,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    RUN_INFO_NAME,
    REPO_DIR,
    NotebookFailed,
    ParameterError,
    check_params,
    code_fingerprint,
    data_fingerprint,
    declared_parameters,
    is_up_to_date,
    list_notebooks,
    main,
    notebook_inputs,
    parse_overrides,
    read_manifest,
    read_params,
    run,
    select_notebooks,
    to_ipynb,
    upstream_files,
)


def write_notebook(folder, name, body):
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


PARAMS_CELL = """\
# %% tags=["parameters"]
figures_dir = "figures"
greeting = "hello"

"""


def test_repository_notebooks_are_numbered_and_have_a_parameters_cell():
    notebooks = list_notebooks()
    assert notebooks and notebooks[0].name == "01_data_exploration.py"
    for path in notebooks:
        declared = declared_parameters(to_ipynb(path))
        assert {"data_dir", "twin_preset", "seed", "figures_dir"} <= declared, path.name


def test_only_declared_parameters_are_injected(tmp_path):
    path = write_notebook(tmp_path, "01_demo.py", PARAMS_CELL + "# %%\nprint(greeting)\n")
    notebook = to_ipynb(path, {"greeting": "hi", "undeclared": 1,
                               "notebooks": {"01_demo": {"figures_dir": "/x"}}})
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.tags]
    assert len(injected) == 1
    assert 'greeting = "hi"' in injected[0].source and "undeclared" not in injected[0].source
    assert 'figures_dir = "/x"' in injected[0].source


def test_read_params_makes_paths_absolute_from_the_repository_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "p.yaml").write_text("figures_dir: out\ndata_dir: ''\nseed: 3\n"
                                     "checkpoint_dir: ~/ckpt\n")
    params = read_params(tmp_path / "p.yaml")
    assert params["figures_dir"] == str(REPO_DIR / "out") and params["data_dir"] == ""
    assert params["checkpoint_dir"] == str(tmp_path / "home" / "ckpt")
    assert read_params(tmp_path / "p.yaml", base_dir=tmp_path)["figures_dir"] == str(tmp_path / "out")


def test_a_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path, small_root):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    write_notebook(notebooks, "01_ok.py", PARAMS_CELL + "# %%\nprint(greeting)\n")
    write_notebook(notebooks, "02_broken.py", PARAMS_CELL + "# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n")
    write_notebook(notebooks, "03_never.py", PARAMS_CELL + "# %%\nopen('ran', 'w').write('x')\n")
    params = {"data_dir": str(small_root), "figures_dir": str(tmp_path / "figs")}
    with pytest.raises(NotebookFailed, match=r"02_broken.py failed in cell \d+ .*ValueError: boom") as failed:
        run(params, tmp_path / "out", notebooks_dir=notebooks)
    assert str(tmp_path / "out" / "02_broken.executed.ipynb") in str(failed.value)
    assert (tmp_path / "out" / "01_ok.executed.ipynb").is_file()
    assert not (notebooks / "ran").exists()


NOTEBOOK = """\
# %% tags=["parameters"]
figures_dir = "figures"
greeting = "hello"

# %%
print(greeting)
"""


@pytest.fixture
def project(tmp_path):
    """A fake notebook, eegkit package, data root and results folder."""
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "02_demo.py").write_text(NOTEBOOK + "table = '01_table.csv'\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "report").mkdir()
    (tmp_path / "pkg" / "report" / "pdf.py").write_text("y = 1\n")
    (tmp_path / "data" / "sub-02").mkdir(parents=True)
    (tmp_path / "data" / "sub-02" / "run.npy").write_bytes(b"0" * 100)
    (tmp_path / "data" / "eegkit_twin.json").write_text('{"preset": "tiny"}')
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "01_table.csv").write_text("a\n1\n")
    (tmp_path / "figs" / "02_out.png").write_bytes(b"png")
    return tmp_path


def inputs_of(project, params=None):
    params = {"figures_dir": str(project / "figs"), "greeting": "hello", **(params or {})}
    return notebook_inputs(project / "nb" / "02_demo.py", params,
                           code_fingerprint(project / "pkg"), data_fingerprint(project / "data"))


def record_of(project):
    return {"inputs": inputs_of(project), "outputs": [str(project / "figs" / "02_out.png")]}


def test_unchanged_is_up_to_date_and_force_or_no_record_runs(project):
    record = record_of(project)
    assert is_up_to_date(record, inputs_of(project)) == (True, "up to date")
    assert is_up_to_date(record, inputs_of(project), force=True) == (False, "forced")
    assert is_up_to_date(None, inputs_of(project))[0] is False


def test_notebook_source_change_reruns(project):
    record = record_of(project)
    path = project / "nb" / "02_demo.py"
    os.utime(path, (1, 1))  # a touch that keeps the content: still up to date
    assert is_up_to_date(record, inputs_of(project))[0]
    path.write_text(path.read_text() + "print('more')\n")
    assert is_up_to_date(record, inputs_of(project)) == (False, "notebook source changed")


def test_only_declared_parameters_count(project):
    record = record_of(project)
    assert is_up_to_date(record, inputs_of(project, {"undeclared": 5}))[0]
    changed = inputs_of(project, {"greeting": "hi"})
    assert is_up_to_date(record, changed) == (False, "parameters changed")
    override = {"notebooks": {"02_demo": {"greeting": "hi"}}}
    assert is_up_to_date(record, inputs_of(project, override)) == (False, "parameters changed")


def test_eegkit_code_change_reruns_but_not_the_report_builder(project):
    record = record_of(project)
    (project / "pkg" / "report" / "pdf.py").write_text("y = 2\n")
    (project / "pkg" / "pipeline").mkdir()  # the runner itself
    (project / "pkg" / "pipeline" / "runner.py").write_text("z = 1\n")
    assert is_up_to_date(record, inputs_of(project))[0]
    (project / "pkg" / "mod.py").write_text("x = 2\n")
    assert is_up_to_date(record, inputs_of(project)) == (False, "eegkit code changed")


@pytest.mark.parametrize("change", ["touch", "add", "twin"])
def test_data_change_reruns(project, change):
    record = record_of(project)
    data = project / "data"
    if change == "touch":
        os.utime(data / "sub-02" / "run.npy", ns=(10**18, 10**18))
    elif change == "add":
        (data / "sub-02" / "run2.npy").write_bytes(b"1")
    else:
        (data / "eegkit_twin.json").write_text('{"preset": "tin2"}')  # same size
        os.utime(data / "eegkit_twin.json", ns=(10**18, 10**18))
    assert is_up_to_date(record, inputs_of(project)) == (False, "input data changed")


def test_hidden_folders_of_the_data_are_not_listed(project):
    before = data_fingerprint(project / "data")
    (project / "data" / ".git").mkdir()
    (project / "data" / ".git" / "index").write_text("x")
    assert data_fingerprint(project / "data") == before


def test_upstream_results_and_missing_outputs_rerun(project):
    record = record_of(project)
    assert upstream_files(project / "nb" / "02_demo.py", project / "figs") == [
        project / "figs" / "01_table.csv"]
    (project / "figs" / "01_table.csv").write_text("a\n2\n")
    assert is_up_to_date(record, inputs_of(project))[1].startswith("results of an earlier")
    record = record_of(project)
    (project / "figs" / "02_out.png").unlink()
    assert is_up_to_date(record, inputs_of(project))[1].startswith("output missing")


def test_unreadable_manifest_is_empty(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert read_manifest(tmp_path / "m.json")["notebooks"] == {}


def test_second_run_skips_and_a_failure_keeps_earlier_records(tmp_path, capsys):
    notebooks, figures, out = tmp_path / "nb", tmp_path / "figs", tmp_path / "out"
    notebooks.mkdir()
    (tmp_path / "data").mkdir()
    write = "open(figures_dir + '/01_hello.csv', 'w').write('a\\n1\\n')\n"
    (notebooks / "01_ok.py").write_text(NOTEBOOK + "\n# %%\nimport os\nos.makedirs(figures_dir, "
                                        "exist_ok=True)\n" + write)
    (notebooks / "02_broken.py").write_text(NOTEBOOK + "\n# %%\nraise ValueError('boom')\n")
    params = {"data_dir": str(tmp_path / "data"), "figures_dir": str(figures)}
    with pytest.raises(NotebookFailed, match="02_broken.py failed in cell"):
        run(params, out, notebooks_dir=notebooks)
    manifest = read_manifest(out / MANIFEST_NAME)
    assert list(manifest["notebooks"]) == ["01_ok"]
    assert manifest["notebooks"]["01_ok"]["outputs"][0].endswith("01_hello.csv")
    info = json.loads((figures / RUN_INFO_NAME).read_text())
    assert info["status"] == "failed in 02_broken.py" and info["is_twin"] is False
    written = (figures / "01_hello.csv").stat().st_mtime_ns

    (notebooks / "02_broken.py").write_text(NOTEBOOK)
    capsys.readouterr()
    info = run(params, out, notebooks_dir=notebooks)
    printed = capsys.readouterr().out
    assert "01_ok.py skipped (up to date" in printed
    assert "02_broken.py (no record of a successful run) ..." in printed
    assert "(1 ran, 1 skipped as up to date)" in printed
    assert (figures / "01_hello.csv").stat().st_mtime_ns == written
    assert info["notebooks"]["01_ok"]["status"] == "skipped (up to date)"
    assert info["notebooks"]["02_broken"]["status"] == "ran" and info["status"] == "complete"
    assert json.loads((figures / RUN_INFO_NAME).read_text()) == json.loads(json.dumps(info))


def test_published_copy_runs_task1_notebooks_and_task2_waits_for_captions(tmp_path):
    """Notebooks 01-03 run on a copy without captions and images; 04 stops with the
    clear message, is recorded as waiting, and its old results are removed."""
    from pathlib import Path as _Path

    from eegkit.pipeline import CAPTIONS_WAIT
    from eegkit.twin import make_twin

    root = tmp_path / "published"
    make_twin(root, preset="tiny", seed=0, layout="openneuro", captions=False, progress=False)
    params = read_params(_Path(__file__).parent / "notebook_params.yaml")
    figures = tmp_path / "figs"
    figures.mkdir()
    (figures / "04_retrieval_scores.csv").write_text("stale\n")  # from a run on other data
    params.update(data_dir=str(root), figures_dir=str(figures), checkpoint_dir="")
    stems = ["01_data_exploration", "02_baseline", "03_multihead_classification", "04_clip_retrieval"]
    manifest = {"version": MANIFEST_VERSION, "notebooks": {"04_clip_retrieval": {
        "inputs": {}, "outputs": [str(figures / "04_retrieval_scores.csv")], "finished": "earlier"}}}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST_NAME).write_text(json.dumps(manifest))
    info = run(params, tmp_path / "out", only=stems)
    assert [info["notebooks"][s]["status"] for s in stems[:3]] == ["ran"] * 3
    assert info["notebooks"]["04_clip_retrieval"]["status"] == CAPTIONS_WAIT
    assert info["status"] == "complete"
    assert (figures / "03_results.csv").is_file()
    assert not list(figures.glob("04_*"))  # nothing of notebook 04, and the stale file is gone
    executed = (tmp_path / "out" / "04_clip_retrieval.executed.ipynb").read_text()
    assert "CaptionsRequired" in executed and "captions.txt" in executed


# --- the command line: a student's first hour (issue 15) ---------------------------

def test_a_misspelt_parameter_is_an_error_naming_the_closest(tmp_path, capsys):
    """In a parameters file, in its per-notebook sections and in -p; nothing runs."""
    (tmp_path / "p.yaml").write_text("twin_prset: tiny\n")
    assert main(["run", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'twin_prset'" in err and "did you mean 'twin_preset'?" in err
    assert not (tmp_path / "o").exists()

    with pytest.raises(ParameterError, match="'n_example_imgs' for 01_data_exploration; "
                       "did you mean 'n_example_images'"):
        check_params({"notebooks": {"01_data_exploration": {"n_example_imgs": 3}}})
    with pytest.raises(ParameterError, match="'max_epochs' for 01_data_exploration"):
        check_params({"notebooks": {"01_data_exploration": {"max_epochs": 3}}})  # declared by 02 only
    with pytest.raises(ParameterError, match="'01_data_exploraton', which is no notebook; "
                       "did you mean '01_data_exploration'"):
        check_params({"notebooks": {"01_data_exploraton": {}}})
    check_params({"max_epochs": 2, "notebooks": {"02_baseline": {"max_epochs": 1}}})

    assert main(["render", "--out", str(tmp_path / "o"), "-p", "max_epoch=2"]) == 2
    assert "-p: unknown parameter 'max_epoch'; did you mean 'max_epochs'?" in capsys.readouterr().err


def test_run_reads_every_parameter_file_through_the_check(tmp_path):
    (tmp_path / "nb").mkdir()
    write_notebook(tmp_path / "nb", "01_demo.py", PARAMS_CELL + "# %%\nprint(greeting)\n")
    with pytest.raises(ParameterError, match="'greting'; did you mean 'greeting'"):
        run({"greting": "hi", "figures_dir": str(tmp_path)}, tmp_path / "out",
            notebooks_dir=tmp_path / "nb")


def test_only_takes_a_number_or_a_name_and_refuses_one_that_matches_nothing(capsys):
    stems = lambda only: [p.stem for p in select_notebooks(only)]  # noqa: E731
    assert stems(["01"]) == stems(["1"]) == stems(["01_data"]) == ["01_data_exploration"]
    assert stems(["03_multihead_classification.py", "02"]) == ["02_baseline",
                                                              "03_multihead_classification"]
    assert len(stems(None)) == len(stems([])) == 5
    with pytest.raises(ParameterError, match="'06' matches no notebook.*01_data_exploration, "
                       "02_baseline"):
        select_notebooks(["06"])
    assert main(["run", "--only", "exploration"]) == 2
    assert "--only 'exploration' matches no notebook" in capsys.readouterr().err


def test_each_command_shows_its_own_options_and_defaults(capsys):
    def help_of(command):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    run_help, render_help, report_help = help_of("run"), help_of("render"), help_of("report")
    assert "--only" in run_help and "--force" in run_help and "-p NAME=VALUE" in run_help
    assert "default: report/params.yaml of this checkout" in run_help
    assert "default: build/notebooks/ of this checkout" in run_help
    assert "--only" not in render_help and "-p NAME=VALUE" in render_help
    assert "--figures" in report_help and "--out DIR" in report_help
    assert "default: --report-dir" in report_help and "--only" not in report_help


def test_the_readme_recipe_runs_one_notebook_with_absolute_paths(tmp_path, monkeypatch):
    """`python -m eegkit.pipeline run --only 01 -p data_dir=~/ds`, from any folder: the
    default parameters file, ~ expanded, every path absolute before a notebook sees it."""
    seen = {}

    def fake_run(params, out_dir, only=None, force=False):
        seen.update(params=params, out_dir=out_dir, only=only)

    monkeypatch.setattr("eegkit.pipeline.cli.run", fake_run)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--only", "01", "-p", "data_dir=~/ds", "-p", "seed=3",
                 "-p", "checkpoint_dir=ckpt"]) == 0
    params = seen["params"]
    assert params["data_dir"] == str(tmp_path / "home" / "ds")
    assert params["checkpoint_dir"] == str(tmp_path / "ckpt")  # -p: from the current folder
    assert params["figures_dir"] == str(REPO_DIR / "figures")  # report/params.yaml: from the repo
    assert params["seed"] == 3 and params["twin_preset"] == "default" and seen["only"] == ["01"]
    assert seen["out_dir"] == str(REPO_DIR / "build" / "notebooks")
    assert parse_overrides(["models=[wang_fc, eegnet]", "data_dir="]) == {
        "models": ["wang_fc", "eegnet"], "data_dir": ""}
    with pytest.raises(ParameterError, match="write -p NAME=VALUE"):
        parse_overrides(["data_dir"])


def test_notebook_path_defaults_reach_it_absolute_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = to_ipynb(REPO_DIR / "notebooks" / "02_baseline.py", {"seed": 1})
    injected = next(c for c in notebook.cells if "injected-parameters" in c.metadata.tags)
    assert f'figures_dir = "{DEFAULT_FIGURES}"' in injected.source
    assert f'checkpoint_dir = "{REPO_DIR / "build" / "checkpoints"}"' in injected.source


def test_the_data_root_expands_a_tilde(tmp_path, monkeypatch):
    from eegkit.twin import resolve_data_root

    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_root("~/ds") == (tmp_path / "ds").resolve()


def test_report_writes_the_pdfs_where_out_says(tmp_path, monkeypatch):
    built = {}

    def fake_build(figures, report_dir, names, out_dir=None):
        built.update(figures=figures, report_dir=report_dir, out_dir=out_dir)
        return []

    monkeypatch.setattr("eegkit.report.pdf.build_reports", fake_build)
    assert main(["report", "--figures", str(tmp_path / "f"), "--out", str(tmp_path / "pdf")]) == 0
    assert built == {"figures": str(tmp_path / "f"), "report_dir": str(REPO_DIR / "report"),
                     "out_dir": str(tmp_path / "pdf")}


def test_the_kernel_runs_over_ipc_without_the_tcp_warning(tmp_path, capfd):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    (tmp_path / "data").mkdir()
    write_notebook(notebooks, "01_transport.py", PARAMS_CELL + (
        "# %%\nfrom ipykernel.kernelapp import IPKernelApp\n"
        "print('transport:', IPKernelApp.instance().transport)\n"))
    params = {"data_dir": str(tmp_path / "data"), "figures_dir": str(tmp_path / "figs")}
    run(params, tmp_path / "out", notebooks_dir=notebooks)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    executed = (tmp_path / "out" / "01_transport.executed.ipynb").read_text()
    assert "transport: ipc" in executed
