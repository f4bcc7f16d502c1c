import textwrap

import pytest

from eegkit.pipeline import NotebookFailed, declared_parameters, list_notebooks, read_params, run, to_ipynb


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


def test_read_params_makes_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("figures_dir: out\ndata_dir: ''\nseed: 3\n")
    params = read_params(tmp_path / "p.yaml")
    assert params["figures_dir"] == str(tmp_path / "out") and params["data_dir"] == ""


def test_a_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path, small_root):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    write_notebook(notebooks, "01_ok.py", PARAMS_CELL + "# %%\nprint(greeting)\n")
    write_notebook(notebooks, "02_broken.py", PARAMS_CELL + "# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n")
    write_notebook(notebooks, "03_never.py", PARAMS_CELL + "# %%\nopen('ran', 'w').write('x')\n")
    params = {"data_dir": str(small_root), "figures_dir": str(tmp_path / "figs")}
    with pytest.raises(NotebookFailed, match=r"02_broken.py failed in cell \d+ .*ValueError: boom"):
        run(params, tmp_path / "out", notebooks_dir=notebooks)
    assert (tmp_path / "out" / "01_ok.executed.ipynb").is_file()
    assert not (notebooks / "ran").exists()
