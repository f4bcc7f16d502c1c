import os

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from eegkit._io import atomic_write


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "result.csv"
    path.write_text("good")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "good" and os.listdir(tmp_path) == ["result.csv"]


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "x.txt", lambda tmp: open(tmp, "w").write("x"))
    finally:
        os.umask(mask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
