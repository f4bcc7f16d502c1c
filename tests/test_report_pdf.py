"""The report PDFs (eegkit.report.pdf) and the pipeline's up-to-date decision.

The reports are built from a temporary results folder: the real 01-03 files of
figures/ plus small fake files for notebooks 04 and 05 (their expected names), and
a fake run_info.json. The skip logic is tested on fake notebooks, code and data,
plus one tiny real run of two trivial notebooks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from eegkit.pipeline import (
    RUN_INFO_NAME,
)
from eegkit.report.pdf import (
    REPORT_DIR,
    ReportBuildError,
    build_report,
    build_reports,
    render_page,
    shown_path,
)

REPO_FIGURES = Path(__file__).resolve().parent.parent / "figures"

SECTIONS = {
    "01": "The data",
    "02": "Task 1: baselines",
    "03": "Task 1: the multi-head model",
    "04": "CLIP image-to-caption retrieval",
    "05": "EEG-to-caption retrieval",
}
FAKE_PNGS = {
    "04": ["04_per_class_map", "04_bertscore_f1", "04_clipscore", "04_gallery"],
    "05": ["05_learning_curves", "05_per_class_map", "05_clipscore", "05_eeg_queries"],
}
FAKE_TABLES = {  # the columns notebooks 04 and 05 write
    "04_retrieval_scores": "model,metric,column,value,ci_low,ci_high,chance,n_queries\n"
                           "twin CLIP,Recall@1 (instance),r1,0.4321,0.41,0.45,0.0025,400\n"
                           "twin CLIP,Recall@1 (class-aware),class_r1,0.9,0.88,0.92,0.05,400\n"
                           "twin CLIP,MAP (instance),ap,0.01,0.001,0.02,0.02,400\n",
    "04_bertscore": "queries,model,precision,recall,f1,threshold,share_f1_above,n_pairs\n"
                    "images (twin CLIP),all-MiniLM-L6-v2,0.8,0.82,0.81,0.7,0.93,400\n",
    "04_clipscore": "queries,matched_mean,mismatched_mean,auc,n_matched,n_mismatched\n"
                    "images (twin CLIP),0.71,0.42,0.97,400,4000\n",
    "05_ablation": 'queries,loss,text encoder,EEG encoder,protocol,Recall@1 (instance),Recall@1 (instance) CI,Recall@3 (instance),Recall@3 (instance) CI,Recall@5 (instance),Recall@5 (instance) CI,Recall@1 (class-aware),Recall@1 (class-aware) CI,Recall@3 (class-aware),Recall@3 (class-aware) CI,Recall@5 (class-aware),Recall@5 (class-aware) CI,MAP (instance),MAP (instance) CI,MAP (class-aware),MAP (class-aware) CI,BERTScore F1,BERTScore F1 > 0.7,BERTScore model,CLIPScore AUC,validation recall@5,validation class_recall@5,validation ap,validation class_ap,trainable EEG params,trainable text params,epochs,best epoch,seconds per epoch,process peak memory MB\nimages (twin CLIP),-,-,-,session,0.6133,0.533-0.707,0.92,0.860-0.973,1.0,1.000-1.000,0.6533,0.566-0.760,0.9333,0.886-0.973,1.0,1.000-1.000,0.7793,0.730-0.837,0.3355,0.303-0.369,0.8593,0.6933,all-MiniLM-L6-v2 (layer 6),0.9847,,,,,,,,,,\nEEG,cos,frozen,frozen (init: Task 1),session,0.0038,0.000-0.012,0.0346,0.015-0.062,0.05,0.025-0.077,0.0385,0.015-0.058,0.1077,0.065-0.142,0.1846,0.134-0.231,0.0555,0.044-0.068,0.0943,0.086-0.102,0.3979,0.0231,all-MiniLM-L6-v2 (layer 6),0.489,0.0308,0.2192,0.0559,0.1006,54080.0,0.0,1.0,1.0,0.6715,1571.9023\nEEG,KD + InfoNCE,adapters,frozen (init: Task 1),session,0.0154,0.004-0.029,0.0385,0.019-0.064,0.0615,0.033-0.092,0.0462,0.021-0.075,0.1192,0.081-0.167,0.2115,0.165-0.262,0.0665,0.053-0.085,0.0987,0.089-0.111,0.4014,0.0269,all-MiniLM-L6-v2 (layer 6),0.5307,0.0615,0.2192,0.0664,0.1005,54080.0,4256.0,1.0,1.0,4.6586,1584.8867\nchance (random ranking),-,-,-,session,0.0133,,0.04,,0.0667,,0.05,,0.1444,,0.2316,,0.0654,,0.1001,,,,,0.5,,,,,,,,,,\n',
    "05_ablation_cross_subject": 'queries,loss,text encoder,EEG encoder,protocol,Recall@1 (instance),Recall@1 (instance) CI,Recall@3 (instance),Recall@3 (instance) CI,Recall@5 (instance),Recall@5 (instance) CI,Recall@1 (class-aware),Recall@1 (class-aware) CI,Recall@3 (class-aware),Recall@3 (class-aware) CI,Recall@5 (class-aware),Recall@5 (class-aware) CI,MAP (instance),MAP (instance) CI,MAP (class-aware),MAP (class-aware) CI,BERTScore F1,BERTScore F1 > 0.7,BERTScore model,CLIPScore AUC,validation recall@5,validation class_recall@5,validation ap,validation class_ap,trainable EEG params,trainable text params,epochs,best epoch,seconds per epoch,process peak memory MB\nEEG,KD + InfoNCE,frozen,trained (init: random),cross_subject,0.02,0.000-0.050,0.04,0.010-0.075,0.09,0.050-0.155,0.05,0.010-0.090,0.11,0.055-0.165,0.23,0.160-0.320,0.0774,0.054-0.106,0.1087,0.088-0.133,0.392,0.03,all-MiniLM-L6-v2 (layer 6),0.5226,0.09,0.22,0.0756,0.1122,639776.0,0.0,1.0,1.0,57.1228,1584.8867\nchance (random ranking),-,-,-,cross_subject,0.0161,,0.0484,,0.0806,,0.05,,0.1446,,0.2324,,0.076,,0.1078,,,,,0.5,,,,,,,,,,\n',
    "05_versus_references": "metric,chosen,chosen CI,classify-then-retrieve (LDA),\"linear map (ridge, alpha 10)\","
                            "chance,above every reference\n"
                            "Recall@5 (instance),0.0615,0.033-0.092,0.0641,0.02,0.0133,False\n"
                            "Recall@1 (class-aware),0.2115,0.165-0.262,0.2,0.06,0.05,True\n"
                            "MAP (instance),0.0665,0.053-0.085,0.06,0.02,0.0654,True\n",
}
# notebook 05 marks the configuration chosen on validation (here the adapters row)
_ablation = FAKE_TABLES["05_ablation"].strip().split("\n")
FAKE_TABLES["05_ablation"] = "\n".join(
    [_ablation[0] + ",chosen on validation"]
    + [row + {"EEG,cos": ",False", "EEG,KD ": ",True"}.get(row[:7], ",") for row in _ablation[1:]]) + "\n"


def write_png(path: Path) -> None:
    """A small PNG of a colour of its own (identical images would be stored once)."""
    shade = sum(path.name.encode()) % 200
    Image.new("RGB", (120, 80), (shade, 90, 200 - shade)).save(path)


def write_run_info(folder: Path, twin: bool = True) -> None:
    notebooks = {
        stem: {"status": "ran", "finished": "2026-11-25T15:00:00+00:00", "seconds": 12.3,
               "device": "cpu (2 cores)", "commit": "0123456789abcdef", "dirty": False,
               "data_root": "/data/twin"}
        for stem in ["01_data_exploration", "02_baseline", "03_multihead_classification",
                     "04_clip_retrieval", "05_eeg_retrieval"]
    }
    info = {"eegkit_version": "0.1.0", "data_root": "/data/twin", "is_twin": twin,
            "twin_preset": "default" if twin else None, "twin_seed": 0 if twin else None,
            "device": "cpu (2 cores)", "commit": "0123456789abcdef", "dirty": True,
            "started": "2026-11-25T14:40:00+00:00", "finished": "2026-11-25T15:00:00+00:00",
            "status": "complete", "notebooks": notebooks}
    (folder / RUN_INFO_NAME).write_text(json.dumps(info))


def results_folder(root: Path, notebooks=("01", "02", "03", "04", "05"), run_info=True,
                   twin=True) -> Path:
    """A results folder named ``figures`` with the files of the given notebooks."""
    folder = root / "figures"
    folder.mkdir(parents=True)
    for path in sorted(REPO_FIGURES.glob("0[123]_*")):
        if path.name[:2] in notebooks:
            shutil.copy(path, folder / path.name)
    for nb, names in FAKE_PNGS.items():
        if nb in notebooks:
            for name in names:
                write_png(folder / f"{name}.png")
    for name, text in FAKE_TABLES.items():
        if name[:2] in notebooks:
            (folder / f"{name}.csv").write_text(text)
    if run_info:
        write_run_info(folder, twin=twin)
    return folder


def pdf_text(path: Path) -> tuple[str, int, int]:
    """All text (whitespace removed), page count and number of images."""
    reader = PdfReader(path)
    text = "".join(page.extract_text() for page in reader.pages)
    n_images = sum(len(page.images) for page in reader.pages)
    return re.sub(r"\s+", "", text), len(reader.pages), n_images


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def full_build(tmp_path_factory):
    """Both reports built from results of every notebook (twin run record)."""
    root = tmp_path_factory.mktemp("full")
    folder = results_folder(root)
    built = build_reports(folder, REPORT_DIR, out_dir=root / "out", verbose=False)
    return folder, {b.name: b for b in built}


def test_reports_reference_every_result_file_and_only_existing_ones(full_build):
    folder, built = full_build
    for name, notebooks in [("midterm", ("01", "02", "04")), ("final", tuple(SECTIONS))]:
        report = built[name]
        assert report.pdf.is_file() and report.not_run == [] and report.missing == []
        referenced = {ref["file"] for ref in report.referenced}
        assert all((folder / f).is_file() for f in referenced)
        # every figure and table (CSV) of the report's notebooks is used
        expected = {p.name for p in folder.iterdir()
                    if p.name[:2] in notebooks and p.suffix in (".png", ".csv")
                    and not p.name.endswith(("_class_balance.csv", "_per_subject.csv"))}
        assert expected <= referenced, (
            f"results files that no section of {name} uses: {sorted(expected - referenced)}; "
            f"add them to report/sections/")
        assert not any(f[:2] not in notebooks for f in referenced if f[0].isdigit())
        text, n_pages, n_images = pdf_text(report.pdf)
        figures = [ref for ref in report.referenced if ref["kind"] == "figure"]
        assert n_images == len(figures)
        for ref in report.referenced:
            if ref["kind"] in ("figure", "table"):
                assert squeeze(f"figures/{ref['file']}") in text, ref["file"]
        for nb in notebooks:
            assert squeeze(SECTIONS[nb]) in text
        assert squeeze("Introduction") in text and squeeze("References") in text
        low, high = (5, 12) if name == "midterm" else (8, 18)
        assert low <= n_pages <= high, (name, n_pages)


def test_numbers_come_from_the_csv_files_and_first_page_says_synthetic(full_build):
    folder, built = full_build
    text, _, _ = pdf_text(built["midterm"].pdf)
    first = squeeze(PdfReader(built["final"].pdf).pages[0].extract_text())
    assert squeeze("0.432 (0.410–0.450)") in text  # Recall@1 (instance) of the fake 04 table
    assert squeeze("43.2 % (41.0–45.0 %) at instance level") in text
    assert squeeze("for 46.8 % of the queries") in text  # 0.9 - 0.4321
    assert squeeze("2 of the 3 scores") in text and squeeze("93.0 %") in text
    final, _, _ = pdf_text(built["final"].pdf)
    # the chosen row against the references, from 05_versus_references.csv and the chosen row
    assert squeeze("is KD + InfoNCE, text encoder adapters, EEG encoder frozen (init: Task 1)") in final
    assert squeeze("it is above both on 2 of the 3 scores (not on Recall@5 (instance))") in final
    # the best session-split baseline of the committed figures/02_results.csv, as the text gives it
    import csv
    from decimal import ROUND_HALF_UP, Decimal

    with open(REPO_FIGURES / "02_results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["protocol"] == "session" and r["metric"] == "accuracy"]
    best = max(rows, key=lambda r: float(r["value"]))
    # The report rounds half away from zero (typst's calc.round): 0.0985 is "9.9 %",
    # where Python's binary float formatting gives "9.8".
    value = (Decimal(best["value"]) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    assert squeeze(f"better baseline is {best['model']}, with a test accuracy of {value} % (") in text
    # across subjects, the multi-head model against the best other classifier of 03_results.csv
    with open(REPO_FIGURES / "03_results.csv") as f:
        held_out = [r for r in csv.DictReader(f) if r["protocol"] == "cross_subject" and r["metric"] == "accuracy"]
    ours = next(r for r in held_out if r["model"].startswith("Multi-head"))
    rival = max((r for r in held_out if r is not ours and not r["model"].startswith("Ideal")),
                key=lambda r: float(r["value"]))
    side = "above" if float(ours["value"]) > float(rival["value"]) else "below"
    assert squeeze(f"{side} the best other classifier there, {rival['model']},") in final
    assert squeeze("Synthetic data") in first and squeeze("not from recordings of people") in first
    assert squeeze("preset default") in first and "0123456789" in first
    assert squeeze("(with uncommitted changes)") in first and squeeze("cpu (2 cores)") in first


def test_no_machine_path_no_decimal_epochs_grouped_counts_and_no_repeated_sentence(full_build):
    _, built = full_build
    text, _, _ = pdf_text(built["final"].pdf)
    first = squeeze(PdfReader(built["final"].pdf).pages[0].extract_text())
    assert "/data/twin" not in text and squeeze("Data twin") in first  # the data root's name only
    assert "8.000" not in text  # epochs of the 03 table are integers
    assert squeeze("54,080") in text and "54080" not in text  # parameters in the cost table
    assert squeeze("It is eegkit's twin CLIP") not in text.replace("’", "'")
    assert text.count(squeeze("The CLIP model is")) == 1


def test_shown_path_is_relative_to_the_repository_or_only_a_name(tmp_path):
    repo = tmp_path / "repo"
    assert shown_path(repo / "data" / "twin-default-seed0", repo) == "data/twin-default-seed0"
    assert shown_path("/mnt/big/ds005589", repo) == "ds005589"
    assert shown_path(None, repo) == "?"


def test_run_table_says_which_trainings_were_reused_from_checkpoints(tmp_path):
    import pandas as pd

    folder = results_folder(tmp_path, notebooks=("01", "02", "03"))
    results = pd.read_csv(folder / "02_results.csv")
    n_runs = int((results["metric"] == "accuracy").sum())
    results.assign(reused_epochs=[8] + [0] * (len(results) - 1)).to_csv(
        folder / "02_results.csv", index=False)
    report = build_report("midterm", folder, REPORT_DIR, out=tmp_path / "m.pdf")
    first = squeeze(PdfReader(report.pdf).pages[0].extract_text())
    assert squeeze(f"(1 of {n_runs} trainings reused)") in first
    assert squeeze("reused from the checkpoint of an earlier run") in first
    fresh_folder = results_folder(tmp_path / "fresh", notebooks=("01", "02"))
    # every training of this results folder ran now (the committed figures may come from
    # a run that reused checkpoints)
    fresh_results = pd.read_csv(fresh_folder / "02_results.csv")
    fresh_results.assign(reused_epochs=0).to_csv(fresh_folder / "02_results.csv", index=False)
    fresh = build_report("midterm", fresh_folder, REPORT_DIR, out=tmp_path / "f.pdf")
    assert "reused" not in PdfReader(fresh.pdf).pages[0].extract_text()


def test_only_notebooks_01_to_03_build_and_say_the_others_have_not_run(tmp_path):
    folder = results_folder(tmp_path, notebooks=("01", "02", "03"), run_info=False)
    built = {b.name: b for b in build_reports(folder, REPORT_DIR, out_dir=tmp_path, verbose=False)}
    assert built["midterm"].not_run == ["04"] and built["final"].not_run == ["04", "05"]
    assert built["final"].missing == [RUN_INFO_NAME]
    text, _, _ = pdf_text(built["final"].pdf)
    assert squeeze("Notebook 04_clip_retrieval.py has not been run") in text
    assert squeeze("Notebook 05_eeg_retrieval.py has not been run") in text
    assert squeeze("No run record") in text
    assert squeeze(SECTIONS["03"]) in text and squeeze(SECTIONS["05"]) in text
    midterm, _, _ = pdf_text(built["midterm"].pdf)
    assert squeeze(SECTIONS["03"]) not in midterm


def test_real_data_report_and_a_missing_single_file(tmp_path):
    folder = results_folder(tmp_path, notebooks=("01", "02"), twin=False)
    (folder / "02_scores.png").unlink()
    report = build_report("midterm", folder, REPORT_DIR, out=tmp_path / "m.pdf")
    assert report.missing == ["02_scores.png"]
    text, _, _ = pdf_text(report.pdf)
    assert squeeze("Real data") in text and squeeze("Synthetic data") not in text
    assert squeeze("Missing: figures/02_scores.png") in text


def test_build_errors_name_the_problem(tmp_path):
    with pytest.raises(ReportBuildError, match="does not exist; run the notebooks first"):
        build_report("final", tmp_path / "nope", REPORT_DIR, out=tmp_path / "x.pdf")
    with pytest.raises(ReportBuildError, match="name='draft': choose one of"):
        build_report("draft", tmp_path, REPORT_DIR)


def test_render_page_writes_a_png(full_build, tmp_path):
    folder, _ = full_build
    out = render_page("final", tmp_path / "page.png", folder, REPORT_DIR, ppi=30)
    assert Image.open(out).format == "PNG"


# ---------------------------------------------------------------- up to date?


TINY_TWIN_FIGURES = Path(os.environ.get("EEGKIT_TEST_FIGURES", Path(__file__).resolve().parent.parent
                                        / "build" / "test-figures"))


def test_both_reports_build_from_the_tiny_twin_notebook_results(tmp_path):
    """The real thing: every notebook's output on the tiny twin (written by nbmake), no fakes."""
    # Checked when the test runs, not at collection: `make test` runs the notebooks first.
    if not (TINY_TWIN_FIGURES / "05_ablation.csv").is_file():
        pytest.skip("no notebook results of the tiny twin yet (make test runs the notebooks first)")
    built = build_reports(TINY_TWIN_FIGURES, REPORT_DIR, out_dir=tmp_path, verbose=False)
    for report in built:
        missing = [f for f in report.missing if f != "run_info.json"]  # only `make report` writes it
        assert report.not_run == [] and missing == [], (report.name, report.not_run, missing)
        text, n_pages, n_images = pdf_text(report.pdf)
        notebooks = ("01", "02", "04") if report.name == "midterm" else tuple(SECTIONS)
        for nb in notebooks:
            assert squeeze(SECTIONS[nb]) in text
        assert n_images == sum(ref["kind"] == "figure" for ref in report.referenced)
        low, high = (5, 12) if report.name == "midterm" else (8, 22)
        assert low <= n_pages <= high, (report.name, n_pages)
