"""Tables in ``docs/*.md`` written from ``figures/*.csv``, so no number is typed by hand.

A table in a Markdown file is a block between two markers; the first names the CSV
and, optionally, which rows and columns to show::

    <!-- table: figures/03_results.csv | where: metric=accuracy | columns: model; protocol; value -->
    (generated: everything up to the closing marker is rewritten)
    <!-- /table -->

* ``where:`` keeps the rows whose column equals the value; several conditions are
  separated by ``;`` (``where: metric=accuracy; protocol=session``);
* ``columns:`` the columns to show, in this order, separated by ``;`` (column names
  may hold commas); all of them when left out.

Cells are the CSV's text as written, except that a whole number written as a float
(``1832748.0``) loses its ``.0``. The CSV path is taken from the repository root.

    python -m eegkit.report.docs_tables            # rewrite every block in docs/*.md
    python -m eegkit.report.docs_tables --check    # exit 1, naming each stale block

``make report`` runs the first after the notebooks; ``tests/test_docs_tables.py``
fails when a block disagrees with its CSV.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The repository root: CSV paths in the markers are relative to it.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The Markdown files whose blocks are kept in step by default.
DOCS_GLOB = "docs/*.md"

BLOCK = re.compile(r"(?P<open><!-- table: (?P<spec>[^\n]*?) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)",
                   re.S)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class DocsTableError(ValueError):
    """A table marker names a column its CSV lacks, or has a malformed option."""


@dataclass(frozen=True)
class TableSpec:
    """What one marker asks for.

    Attributes
    ----------
    csv : str
        Path of the CSV, relative to the repository root.
    where : tuple of (str, str)
        ``(column, value)`` conditions a row must all meet.
    columns : tuple of str or None
        Columns to show, in order; None shows all.
    """

    csv: str
    where: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, spec: str) -> TableSpec:
        """Read ``figures/x.csv | where: a=b | columns: c; d`` (the marker's text)."""
        path, *options = [part.strip() for part in spec.split(" | ")]
        where: list[tuple[str, str]] = []
        columns = None
        for option in options:
            key, sep, value = option.partition(":")
            key = key.strip()
            items = [item.strip() for item in value.split(";") if item.strip()]
            if not sep or key not in ("where", "columns"):
                raise DocsTableError(f"table marker {spec!r}: option {option!r} is not "
                                     "'where: column=value' or 'columns: a; b'")
            if key == "columns":
                columns = tuple(items)
                continue
            for item in items:
                column, eq, wanted = item.partition("=")
                if not eq:
                    raise DocsTableError(f"table marker {spec!r}: {item!r} in where: is not column=value")
                where.append((column.strip(), wanted.strip()))
        return cls(path, tuple(where), columns)

    def marker(self) -> str:
        """The marker text that :meth:`parse` reads back."""
        parts = [self.csv]
        if self.where:
            parts.append("where: " + "; ".join(f"{c}={v}" for c, v in self.where))
        if self.columns is not None:
            parts.append("columns: " + "; ".join(self.columns))
        return " | ".join(parts)


def _cell(text: str) -> str:
    if _NUMBER.match(text) and text.endswith(".0"):
        text = text[:-2]
    return text.replace("|", "\\|")


def render_table(spec: TableSpec, root: str | Path = REPO_ROOT) -> str:
    """The Markdown table (and a line naming its source) for one marker.

    Raises
    ------
    DocsTableError
        When a column named in the marker is not in the CSV. A missing CSV gives a
        note saying so instead of a table.
    """
    path = Path(root) / spec.csv
    if not path.is_file():  # e.g. notebooks 04 and 05 on a copy without captions
        return (f"*`{spec.csv}` does not exist: the notebook that writes it has not run on "
                "these data (`figures/run_info.json` says why).*\n")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    wanted = list(spec.columns) if spec.columns is not None else header
    unknown = [c for c, _ in spec.where if c not in header] + [c for c in wanted if c not in header]
    if unknown:
        raise DocsTableError(f"{spec.csv}: no column(s) {unknown} (a table marker asks for them); "
                             f"the CSV has {header}")
    index = {name: i for i, name in enumerate(header)}
    kept = [row for row in rows if all(row[index[c]] == v for c, v in spec.where)]
    cells = [[_cell(row[index[c]]) for c in wanted] for row in kept]
    numeric = [bool(kept) and all(_NUMBER.match(row[index[c]]) or not row[index[c]] for row in kept)
               for c in wanted]
    lines = ["| " + " | ".join(_cell(c) for c in wanted) + " |",
             "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    source = f"*Generated from `{spec.csv}`" + (
        " (" + ", ".join(f"{c} = {v}" for c, v in spec.where) + ")" if spec.where else "")
    lines += ["", source + " by `python -m eegkit.report.docs_tables`; do not edit by hand.*"]
    return "\n".join(lines) + "\n"


def update_text(text: str, root: str | Path = REPO_ROOT) -> str:
    """``text`` with every marked block rewritten from its CSV."""
    def replace(match: re.Match) -> str:
        table = render_table(TableSpec.parse(match["spec"]), root)
        return match["open"] + table + match["close"]

    return BLOCK.sub(replace, text)


def stale_blocks(paths: Sequence[str | Path], root: str | Path = REPO_ROOT) -> list[str]:
    """``"file: marker"`` for every block whose text differs from what its CSV gives."""
    stale = []
    for path in paths:
        text = Path(path).read_text()
        for match in BLOCK.finditer(text):
            expected = render_table(TableSpec.parse(match["spec"]), root)
            if match["body"] != expected:
                stale.append(f"{path}: {match['spec']}")
    return stale


def docs_files(root: str | Path = REPO_ROOT) -> list[Path]:
    """The Markdown files kept in step: ``docs/*.md``."""
    return sorted(Path(root).glob(DOCS_GLOB))


def update_docs(paths: Sequence[str | Path], root: str | Path = REPO_ROOT) -> list[Path]:
    """Rewrite the marked blocks of ``paths`` in place; return the files that changed."""
    changed = []
    for path in map(Path, paths):
        text = path.read_text()
        new = update_text(text, root)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eegkit.report.docs_tables",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help=f"Markdown files (default: {DOCS_GLOB})")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a block disagrees with its CSV")
    args = parser.parse_args(argv)
    files = args.files or docs_files()
    try:
        if args.check:
            stale = stale_blocks(files)
            for block in stale:
                print(f"stale: {block}")
            if stale:
                print("run: python -m eegkit.report.docs_tables")
            return 1 if stale else 0
        changed = update_docs(files)
    except DocsTableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"docs tables: {len(changed)} of {len(files)} file(s) rewritten"
          + (f" ({', '.join(str(p) for p in changed)})" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
