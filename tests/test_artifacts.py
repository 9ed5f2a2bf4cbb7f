"""Atomic writes: a reader sees the old file or the new one, never half of one."""

import numpy as np
import pytest

from fewmul.nn.artifacts import save_npz, write_atomic


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


class Unwritable:
    def __array__(self, *args, **kwargs):
        raise ValueError("cannot be written")


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "net.npz"
    save_npz(path, {"a": np.arange(3)})
    with pytest.raises(ValueError, match="cannot be written"):
        save_npz(path, {"a": np.arange(2), "b": Unwritable()}, compressed=False)
    with np.load(path) as f:
        assert f["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]


def test_save_npz_round_trips(tmp_path):
    for compressed in (True, False):
        save_npz(tmp_path / "x.npz", {"w": np.eye(3, dtype=np.int8)}, compressed=compressed)
        with np.load(tmp_path / "x.npz") as f:
            assert (f["w"] == np.eye(3)).all()
