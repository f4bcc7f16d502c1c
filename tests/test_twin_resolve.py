
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from eegkit import resolve_data_root  # noqa: E402


def test_resolve_data_root_prefers_argument_then_environment(tmp_path, monkeypatch, small_root):
    monkeypatch.setenv("EEGKIT_DATA", str(small_root))
    assert resolve_data_root("/given") == tmp_path.__class__("/given")
    assert resolve_data_root("") == small_root
    monkeypatch.delenv("EEGKIT_DATA")
    root = resolve_data_root(twin_preset="tiny", seed=4, cache_dir=tmp_path)
    assert root == tmp_path / "twin-tiny-seed4" and (root / "eegkit_twin.json").is_file()
    mtime = (root / "captions.txt").stat().st_mtime
    assert resolve_data_root(twin_preset="tiny", seed=4, cache_dir=tmp_path) == root
    assert (root / "captions.txt").stat().st_mtime == mtime  # reused, not rewritten


def test_resolve_data_root_rewrites_a_twin_of_an_older_generator(tmp_path):
    import json

    root = resolve_data_root(twin_preset="tiny", seed=5, cache_dir=tmp_path)
    manifest = root / "eegkit_twin.json"
    content = json.loads(manifest.read_text())
    content["generator_version"] = -1
    manifest.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match="generator version -1"):
        resolve_data_root(twin_preset="tiny", seed=5, cache_dir=tmp_path)
    assert json.loads(manifest.read_text())["generator_version"] != -1


def test_resolve_data_root_rewrites_a_twin_of_other_generator_settings(tmp_path):
    """A cached twin written before a change of the generator's defaults is not reused."""
    import json

    root = resolve_data_root(twin_preset="tiny", seed=6, cache_dir=tmp_path)
    manifest = root / "eegkit_twin.json"
    content = json.loads(manifest.read_text())
    content["preset_fields"]["snr"] += 0.1
    manifest.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match=r"other generator settings \(snr\)"):
        resolve_data_root(twin_preset="tiny", seed=6, cache_dir=tmp_path)
    assert json.loads(manifest.read_text())["preset_fields"]["snr"] != content["preset_fields"]["snr"]


def test_open_dataset_and_banner(small_root):
    from eegkit import data_banner, open_dataset

    data = open_dataset(str(small_root), subjects="complete")
    assert len(data) == 200
    assert "synthetic twin" in data_banner(data) and "not from people" in data_banner(data)


def test_resolve_data_root_compares_a_missing_field_at_the_value_before_it_was_added(
        tmp_path, monkeypatch):
    """A manifest without a later field was drawn as that field's old value draws: it is
    reused when today's setting equals that value, written again when it does not (the
    default may have changed since), and a missing field with no old value is a change."""
    import json
    import warnings

    from eegkit.twin import preset
    from eegkit.twin.preset import get_preset

    root = resolve_data_root(twin_preset="tiny", seed=7, cache_dir=tmp_path)
    manifest = root / "eegkit_twin.json"
    content = json.loads(manifest.read_text())
    del content["preset_fields"]["subject_noise_quantiles"]
    manifest.write_text(json.dumps(content))
    mtime = (root / "captions.txt").stat().st_mtime
    today = get_preset("tiny").subject_noise_quantiles
    monkeypatch.setattr(preset, "FIELDS_BEFORE_ADDED", {"subject_noise_quantiles": today})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_data_root(twin_preset="tiny", seed=7, cache_dir=tmp_path) == root
    assert (root / "captions.txt").stat().st_mtime == mtime
    # drawn with the other value before the field existed: another twin
    monkeypatch.setattr(preset, "FIELDS_BEFORE_ADDED", {"subject_noise_quantiles": not today})
    with pytest.warns(UserWarning, match=r"other generator settings \(subject_noise_quantiles\)"):
        resolve_data_root(twin_preset="tiny", seed=7, cache_dir=tmp_path)
    # a missing field that the table does not know
    content = json.loads(manifest.read_text())
    del content["preset_fields"]["session_alpha_sd"]
    manifest.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match=r"other generator settings \(session_alpha_sd\)"):
        resolve_data_root(twin_preset="tiny", seed=7, cache_dir=tmp_path)
