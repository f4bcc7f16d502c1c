"""docs/*.md: every generated table agrees with its figures/*.csv (eegkit.report.docs_tables)."""

from __future__ import annotations

import pytest

from eegkit.report.docs_tables import (
    BLOCK,
    DocsTableError,
    TableSpec,
    docs_files,
    render_table,
    stale_blocks,
    update_text,
)


def test_every_docs_table_agrees_with_its_csv():
    stale = stale_blocks(docs_files())
    assert not stale, (f"docs tables differ from their CSVs: {stale}; "
                       "run python -m eegkit.report.docs_tables")


def test_the_results_page_has_generated_tables():
    text = "".join(p.read_text() for p in docs_files())
    assert len(BLOCK.findall(text)) >= 5


@pytest.fixture
def figures(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "x.csv").write_text(
        "model,metric,value,\"a, b\"\nFC,accuracy,0.0654,1832748.0\nFC,top5,0.25,3\nLDA,accuracy,0.0985,\n")
    return tmp_path


def test_a_table_is_the_csv_cells_filtered_and_ordered(figures):
    spec = TableSpec.parse("figures/x.csv | where: metric=accuracy | columns: value; a, b; model")
    table = render_table(spec, figures)
    assert table.splitlines()[:4] == [
        "| value | a, b | model |",
        "|--:|--:|:--|",
        "| 0.0654 | 1832748 | FC |",
        "| 0.0985 |  | LDA |",
    ]
    assert TableSpec.parse(spec.marker()) == spec


def test_a_hand_edited_table_is_stale_and_update_restores_it(figures):
    doc = figures / "doc.md"
    good = update_text("text\n<!-- table: figures/x.csv -->\n<!-- /table -->\nmore\n", figures)
    doc.write_text(good)
    assert stale_blocks([doc], figures) == []
    doc.write_text(good.replace("0.0654", "0.0655"))
    assert stale_blocks([doc], figures) == [f"{doc}: figures/x.csv"]
    assert update_text(doc.read_text(), figures) == good
    assert good.startswith("text\n") and good.endswith("<!-- /table -->\nmore\n")


def test_a_changed_csv_makes_the_table_stale(figures):
    doc = figures / "doc.md"
    doc.write_text(update_text("<!-- table: figures/x.csv -->\n<!-- /table -->\n", figures))
    (figures / "figures" / "x.csv").write_text("model,metric,value,\"a, b\"\nFC,accuracy,0.07,1\n")
    assert stale_blocks([doc], figures)


def test_unknown_columns_and_options_are_named(figures):
    with pytest.raises(DocsTableError, match=r"no column\(s\) \['accuracy'\]"):
        render_table(TableSpec.parse("figures/x.csv | columns: model; accuracy"), figures)
    with pytest.raises(DocsTableError, match="is not 'where: column=value'"):
        TableSpec.parse("figures/x.csv | sort: model")


def test_a_missing_csv_gives_a_note_not_an_error(figures):
    assert "does not exist" in render_table(TableSpec("figures/04_missing.csv"), figures)
