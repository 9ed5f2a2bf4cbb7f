"""CIFAR-10 and SVHN: reading their files, pixel order, splits, checksums and download.

Every file here is written by the tests themselves (a small CIFAR-style tarball of
pickled batches, small MAT v5 files); nothing is downloaded.
"""

import base64
import io
import os
import pickle
import tarfile
import zlib

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.nn.cifar import CIFAR10_BATCHES, CIFAR10_FILE, CIFAR10_MD5, CifarError, read_cifar10
from fewmul.nn.config import DataConfig
from fewmul.nn.data import (DOWNLOADS, Download, data_dir, download, load_dataset, quantize_pixels,
                            verify_checksums)
from fewmul.nn.idx import md5
from fewmul.nn.matfile import MatError, read_mat
from fewmul.nn.svhn import SVHN_FILES, SVHN_MD5, SVHN_URLS


# --------------------------------------------------------------------------- CIFAR-10

def first_image():
    """A (C, H, W) image whose channels differ: red = 10 * row, green = column, blue = 200."""
    img = np.zeros((3, 32, 32), np.uint8)
    img[0] = 10 * np.arange(32)[:, None] % 256
    img[1] = np.arange(32)[None, :]
    img[2] = 200
    return img


def cifar_batches(per_batch=4, n_test=6, seed=0):
    """``{batch name: (data (n, 3072) in (C, H, W) order, labels)}``; the first training
    image is :func:`first_image`. The labels are Python integers, as in the published
    files, except those of ``data_batch_2``: NumPy integers, as other tools may save them."""
    rng = np.random.default_rng(seed)
    out, k = {}, 0
    for name in CIFAR10_BATCHES:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(n)]
        out[name] = (x, [np.int64(v) for v in labels] if name == "data_batch_2" else labels)
        k += n
    out["data_batch_1"][0][0] = first_image().reshape(-1)
    return out


def pickled(x, labels):
    """A batch as the published files hold it: a dict pickled with protocol 2."""
    return pickle.dumps({"batch_label": "a test batch", "labels": labels, "data": x,
                         "filenames": [f"img{i}.png" for i in range(len(x))]}, protocol=2)


def write_cifar(directory, how="tar", batches=None):
    """The batches as the published tarball, its extracted folder, or loose files."""
    batches = batches or cifar_batches()
    directory.mkdir(parents=True, exist_ok=True)
    if how == "tar":
        with tarfile.open(directory / CIFAR10_FILE, "w:gz") as tar:
            for name, (x, y) in batches.items():
                raw = pickled(x, y)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
        return directory / CIFAR10_FILE
    folder = directory / "cifar-10-batches-py" if how == "folder" else directory
    folder.mkdir(exist_ok=True)
    for name, (x, y) in batches.items():
        (folder / name).write_bytes(pickled(x, y))
    return folder


def hwc(x_chw):
    return x_chw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(x_chw), -1)


@pytest.mark.parametrize("how", ["tar", "folder", "loose"])
def test_cifar10_splits_labels_and_pixel_order(tmp_path, how):
    batches = cifar_batches()
    write_cifar(tmp_path / "c", how, batches)
    data = load_dataset(DataConfig("cifar10", 8, str(tmp_path / "c")))
    assert data.shape == (3, 32, 32) and data.inputs == 3072 and data.classes == 10
    # 20 training images: a small set keeps a sixth (3) for validation, the last ones
    assert (len(data.train), len(data.val), len(data.test)) == (17, 3, 6)
    xtr = np.concatenate([batches[b][0] for b in CIFAR10_BATCHES[:-1]])
    ytr = np.concatenate([batches[b][1] for b in CIFAR10_BATCHES[:-1]])
    np.testing.assert_array_equal(np.concatenate([data.train.x, data.val.x]), hwc(xtr))
    np.testing.assert_array_equal(np.concatenate([data.train.y, data.val.y]), ytr)
    np.testing.assert_array_equal(data.val.y, ytr[17:])
    np.testing.assert_array_equal(data.test.x, hwc(batches["test_batch"][0]))
    np.testing.assert_array_equal(data.test.y, batches["test_batch"][1])
    # (H, W, C): a pixel's red, green and blue are adjacent, rows of pixels in order
    row = data.train.x[0]
    assert row[:6].tolist() == [0, 0, 200, 0, 1, 200]               # pixels (0, 0), (0, 1)
    assert row[3 * 32:3 * 32 + 3].tolist() == [10, 0, 200]          # pixel (1, 0)
    assert row[3 * (5 * 32 + 7):][:3].tolist() == [50, 7, 200]      # pixel (5, 7)
    assert data.train.x.dtype == np.uint8


def test_cifar10_quantization(tmp_path):
    write_cifar(tmp_path / "c")
    full = load_dataset(DataConfig("cifar10", 8, str(tmp_path / "c")))
    low = load_dataset(DataConfig("cifar10", 2, str(tmp_path / "c")))
    np.testing.assert_array_equal(low.train.x, quantize_pixels(full.train.x, 255, 2))
    assert low.train.x.max() == 3 and np.all((low.train.x == 3) == (full.train.x >= 213))
    assert low.train.x[0, :3].tolist() == [0, 0, 2]                 # 200 * 3 / 255 = 2.35


def test_cifar10_corrupt_files_name_the_file(tmp_path):
    tar = write_cifar(tmp_path / "c")
    tar.write_bytes(tar.read_bytes()[:3000])
    with pytest.raises(CifarError, match="corrupt or truncated tarball") as e:
        load_dataset(DataConfig("cifar10", 8, str(tmp_path / "c")))
    assert str(tar) in str(e.value)

    batches = cifar_batches()
    batches["data_batch_3"] = (batches["data_batch_3"][0][:, :1024], batches["data_batch_3"][1])
    folder = write_cifar(tmp_path / "d", "folder", batches)
    with pytest.raises(CifarError, match=r"data_batch_3: expected data as uint8 \(n, 3072\), "
                                         r"got uint8 \(4, 1024\)"):
        read_cifar10(folder)
    (folder / "data_batch_3").write_bytes(pickled(*cifar_batches()["data_batch_3"]))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8),
                                                      "labels": [10]}))
    with pytest.raises(CifarError, match="test_batch: label 10 out of range 0..9"):
        read_cifar10(folder)


def test_cifar10_pickles_may_only_hold_arrays(tmp_path):
    """A batch is unpickled with only what a NumPy array needs: nothing else is run."""
    folder = write_cifar(tmp_path / "c", "folder")
    (folder / "data_batch_2").write_bytes(pickle.dumps(os.getcwd, protocol=2))
    with pytest.raises(CifarError, match="data_batch_2: not a CIFAR-10 batch: cannot unpickle "
                                         "it .*refusing to load (posix|nt).getcwd"):
        read_cifar10(folder)


def test_cifar10_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="fewmul data cifar10 --download") as e:
        load_dataset(DataConfig("cifar10", 8, str(tmp_path)))
    assert CIFAR10_FILE in str(e.value)
    folder = write_cifar(tmp_path / "c", "folder")
    (folder / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_5: missing.*fewmul data cifar10 "
                                                "--download"):
        load_dataset(DataConfig("cifar10", 8, str(tmp_path / "c")))


def test_sets_default_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWMUL_CACHE", str(tmp_path))
    assert data_dir(DataConfig("cifar10")) == tmp_path / "cifar10"
    assert data_dir(DataConfig("svhn")) == tmp_path / "svhn"
    assert data_dir(DataConfig("mnist")) == tmp_path / "mnist"
    write_cifar(tmp_path / "cifar10")
    assert len(load_dataset(DataConfig("cifar10", 8)).test) == 6


def test_checksum_mismatch_names_the_file_and_both_checksums(tmp_path, capsys):
    tar = write_cifar(tmp_path / "c")
    got, published = md5(tar), CIFAR10_MD5[CIFAR10_FILE]
    assert verify_checksums(tmp_path / "c", CIFAR10_MD5) == [
        f"{tar}: MD5 {got}, expected {published} (corrupt or a different file)"]
    # 'fewmul data' checks a downloaded file before reading it
    assert main(["data", "cifar10", "--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert str(tar) in err and got in err and published in err
    assert "fewmul data cifar10 --download" in err
    assert verify_checksums(tmp_path / "s", SVHN_MD5) == [
        f"{tmp_path / 's' / name}: missing" for name in SVHN_FILES]


def test_download_checks_the_file_and_leaves_no_partial_file(tmp_path):
    mirror = tmp_path / "mirror"
    tar = write_cifar(mirror)
    good = {CIFAR10_FILE: md5(tar)}
    cache, log = tmp_path / "cache", []
    download("cifar10", cache, urls=("file:///nonexistent/", mirror.as_uri() + "/"),
             checksums=good, log=log.append)
    assert [p.name for p in cache.iterdir()] == [CIFAR10_FILE]
    assert log[-1] == f"{cache / CIFAR10_FILE}: downloaded, MD5 OK"
    assert len(load_dataset(DataConfig("cifar10", 8, str(cache))).test) == 6
    download("cifar10", cache, urls=(mirror.as_uri() + "/",), checksums=good, log=log.append)
    assert log[-1] == f"{cache / CIFAR10_FILE}: present, MD5 OK"
    # with the published checksum, the mirror's (different) file is refused, nothing kept
    other = tmp_path / "other"
    with pytest.raises(ValueError, match=f"could not fetch {CIFAR10_FILE} into {other}: .*"
                                         f"MD5 {good[CIFAR10_FILE]}, expected "
                                         f"{CIFAR10_MD5[CIFAR10_FILE]}"):
        download("cifar10", other, urls=(mirror.as_uri() + "/",), log=log.append)
    assert list(other.iterdir()) == []


def test_download_command(tmp_path, capsys, monkeypatch):
    mirror = tmp_path / "mirror"
    write_svhn(mirror)
    assert main(["data", "svhn", "--download", "--dir", str(tmp_path / "s"),
                 "--url", mirror.as_uri() + "/"]) == 2
    err = capsys.readouterr().err
    assert f"could not fetch {SVHN_FILES[0]}" in err and SVHN_MD5[SVHN_FILES[0]] in err
    assert list((tmp_path / "s").iterdir()) == []
    # the same with the checksums of the mirror's files
    write_cifar(mirror)
    monkeypatch.setitem(DOWNLOADS, "cifar10", Download({CIFAR10_FILE: md5(mirror / CIFAR10_FILE)},
                                                       ()))
    assert main(["data", "cifar10", "--download", "--dir", str(tmp_path / "c"),
                 "--url", "file:///nonexistent/", "--url", mirror.as_uri() + "/"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'c' / CIFAR10_FILE}: downloaded, MD5 OK" in out
    assert "MD5 checksums OK" in out and "train 17, validation 3, test 6" in out
    assert main(["data", "digits", "--download"]) == 2
    assert "ships inside the package" in capsys.readouterr().err


def test_data_command_prints_what_is_there(tmp_path, capsys, monkeypatch):
    write_cifar(tmp_path / "c", "folder")
    assert main(["data", "cifar10", "--dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "cifar10 (" in out and "32x32 pixels x 3 channels, 10 classes" in out
    assert "train 17, validation 3, test 6" in out
    # the files under their published names are checked first: let these small ones pass
    write_svhn(tmp_path / "s")
    ours = {name: md5(tmp_path / "s" / name) for name in SVHN_FILES}
    monkeypatch.setitem(DOWNLOADS, "svhn", Download(ours, SVHN_URLS))
    assert main(["data", "svhn", "--dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "MD5 checksums OK" in out and "train 11, validation 2, test 5" in out
    assert main(["data", "svhn", "--dir", str(tmp_path / "empty")]) == 2
    assert "fewmul data svhn --download" in capsys.readouterr().err


# --------------------------------------------------------------------------- MAT v5 / SVHN

def mat_element(mtype, data, order="<", small=True):
    """A data element: the 4-byte small form for up to 4 bytes, else tag + data padded to 8."""
    if small and len(data) <= 4:
        return np.array([mtype | len(data) << 16], order + "u4").tobytes() + data.ljust(4, b"\0")
    return np.array([mtype, len(data)], order + "u4").tobytes() + data + b"\0" * (-len(data) % 8)


MX = {"f8": 6, "u1": 9, "i2": 10}                   # array classes
MI = {"u1": 2, "i2": 3, "f8": 9}                    # storage types


def write_mat(path, variables, order="<", compress=True):
    """A MAT v5 file of ``{name: array}`` or ``{name: (array, storage dtype)}`` (MATLAB
    stores e.g. a double array of small integers as bytes)."""
    body = b""
    for name, value in variables.items():
        array, stored = value if isinstance(value, tuple) else (value, value.dtype.str[1:])
        cls = array.dtype.str[1:]
        matrix = (mat_element(6, np.array([MX[cls], 0], order + "u4").tobytes(), order)
                  + mat_element(5, np.array(array.shape, order + "i4").tobytes(), order)
                  + mat_element(1, name.encode(), order)
                  + mat_element(MI[stored], array.ravel(order="F").astype(order + stored).tobytes(),
                                order))
        element = mat_element(14, matrix, order, small=False)
        if compress:                                # a compressed element is not padded
            packed = zlib.compress(element)
            element = np.array([15, len(packed)], order + "u4").tobytes() + packed
        body += element
    header = (b"MATLAB 5.0 MAT-file, written by the fewmul tests".ljust(116) + b"\0" * 8
              + np.array([0x0100, 0x4D49], order + "u2").tobytes())
    path.write_bytes(header + body)


def svhn_arrays(n, seed):
    """``X`` (32, 32, 3, n) and ``y`` (n, 1) labels 1..10; image 0's pixel (row, column) has
    red = row, green = column + 100, blue = 250."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    rows, cols = np.indices((32, 32))
    x[:, :, 0, 0], x[:, :, 1, 0], x[:, :, 2, 0] = rows, cols + 100, 250
    y = (np.arange(n) % 10 + 1).astype(np.float64).reshape(n, 1)
    return x, y


def write_svhn(directory, n_train=13, n_test=5, **kw):
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, n, seed in zip(SVHN_FILES, (n_train, n_test), (1, 2)):
        x, y = svhn_arrays(n, seed)
        write_mat(directory / name, {"X": x, "y": (y, "u1")}, **kw)
        arrays[name] = x, y
    return arrays


@pytest.mark.parametrize("order, compress", [("<", True), ("<", False), (">", False)])
def test_svhn_splits_labels_and_pixel_order(tmp_path, order, compress):
    arrays = write_svhn(tmp_path / "s", order=order, compress=compress)
    data = load_dataset(DataConfig("svhn", 8, str(tmp_path / "s")))
    assert data.shape == (3, 32, 32) and data.inputs == 3072
    assert (len(data.train), len(data.val), len(data.test)) == (11, 2, 5)
    x, y = arrays[SVHN_FILES[0]]
    row = data.train.x[0]
    assert row[:6].tolist() == [0, 100, 250, 0, 101, 250]           # pixels (0, 0), (0, 1)
    assert row[3 * (5 * 32 + 7):][:3].tolist() == [5, 107, 250]     # pixel (5, 7)
    xs = np.concatenate([data.train.x, data.val.x]).reshape(13, 32, 32, 3)
    np.testing.assert_array_equal(xs, x.transpose(3, 0, 1, 2))
    # labels 1..10 with 10 meaning the digit 0; the validation images are the last ones
    assert data.train.y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert data.val.y.tolist() == [2, 3] and data.test.y.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(data.test.x.reshape(5, 32, 32, 3),
                                  arrays[SVHN_FILES[1]][0].transpose(3, 0, 1, 2))
    low = load_dataset(DataConfig("svhn", 3, str(tmp_path / "s")))
    np.testing.assert_array_equal(low.test.x, quantize_pixels(data.test.x, 255, 3))


def test_svhn_bad_files(tmp_path):
    write_svhn(tmp_path / "s")
    bad = tmp_path / "s" / SVHN_FILES[1]
    x, y = svhn_arrays(5, 0)
    y[3] = 12
    write_mat(bad, {"X": x, "y": y})
    with pytest.raises(MatError, match=r"y: label 12.0 \(image 3\) out of range 1..10") as e:
        load_dataset(DataConfig("svhn", 8, str(tmp_path / "s")))
    assert str(bad) in str(e.value)
    y[3] = 4
    write_mat(bad, {"X": x[:, :, :2], "y": y})
    with pytest.raises(MatError, match=r"X: expected uint8 \(32, 32, 3, n\), got uint8 "
                                       r"\(32, 32, 2, 5\)"):
        load_dataset(DataConfig("svhn", 8, str(tmp_path / "s")))
    write_mat(bad, {"X": x, "y": y[:4]})
    with pytest.raises(MatError, match=r"y: expected \(5, 1\) labels .* got shape \(4, 1\)"):
        load_dataset(DataConfig("svhn", 8, str(tmp_path / "s")))
    bad.unlink()
    with pytest.raises(FileNotFoundError, match=f"no {SVHN_FILES[1]} in this directory; .*"
                                                "fewmul data svhn --download"):
        load_dataset(DataConfig("svhn", 8, str(tmp_path / "s")))


def test_svhn_download_with_file_urls(tmp_path):
    mirror = tmp_path / "mirror"
    write_svhn(mirror)
    good = {name: md5(mirror / name) for name in SVHN_FILES}
    cache = download("svhn", tmp_path / "cache", urls=(mirror.as_uri() + "/",), checksums=good,
                     log=lambda line: None)
    assert sorted(p.name for p in cache.iterdir()) == sorted(SVHN_FILES)
    assert len(load_dataset(DataConfig("svhn", 8, str(cache))).test) == 5
    (cache / SVHN_FILES[1]).unlink()
    bad = dict(good, **{SVHN_FILES[1]: "0" * 32})
    with pytest.raises(ValueError, match=f"{SVHN_FILES[1]}.*MD5 {good[SVHN_FILES[1]]}, "
                                         f"expected 0{{32}}"):
        download("svhn", cache, urls=(mirror.as_uri() + "/",), checksums=bad, log=lambda line: None)
    assert sorted(p.name for p in cache.iterdir()) == [SVHN_FILES[0]]       # no .part left


# Written by scipy.io.savemat(f, {"X": X, "y": y}, do_compression=True), with
# r, c, ch, i = np.indices((4, 5, 3, 2)); X = (10 * r + c + 100 * ch + 7 * i).astype(np.uint8);
# y = np.array([[10.0], [3.0]]): a reference file from another MAT-file writer.
SCIPY_MAT = base64.b64decode(
    "TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFR1ZSBEZWMgIDEgMDY6NTc6"
    "MTAgMjAyNgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0PAAAA"
    "ogAAAHic42NgYNgAxGxAzAHEnAwQwArEAkDMAmUzAzETEDMCYQSUXQFSyCUix8gtKs/EI6bAzCuuyMInoZSSV9GU"
    "ml/ZnFZQ1ZJeWN2aUVTTduLSnWcnL999furKvRenr95/eebag1fsgtKqHEIyapzCsupAYzSAxmhml9Z35pQ1dOWW"
    "N3YDjekBGtN7/ubjtxduPXl38fbT90BjPgCN+QgAwok6SQ8AAAAtAAAAeJzjY2BgcABiNiDmgNIgwArlMwExIxgz"
    "MlQCaU4gFmCAARUHCM3hAAAwNgGz")


def test_matfile_reads_a_reference_file(tmp_path):
    (tmp_path / "ref.mat").write_bytes(SCIPY_MAT)
    v = read_mat(tmp_path / "ref.mat")
    r, c, ch, i = np.indices((4, 5, 3, 2))
    assert v["X"].dtype == np.uint8
    np.testing.assert_array_equal(v["X"], 10 * r + c + 100 * ch + 7 * i)
    assert v["y"].dtype == np.float64 and v["y"].tolist() == [[10.0], [3.0]]


def test_matfile_round_trip_and_errors(tmp_path):
    path = tmp_path / "a.mat"
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for order in "<>":
        for compress in (True, False):
            write_mat(path, {"a": a, "b": (np.array([[1.0, 2.0]]), "u1")}, order, compress)
            v = read_mat(path)
            np.testing.assert_array_equal(v["a"], a)
            assert v["b"].dtype == np.float64 and v["b"].tolist() == [[1.0, 2.0]]
    assert list(read_mat(path, ("b",))) == ["b"]
    with pytest.raises(MatError, match=f"{path}: no variable 'X' \\(it has 'a', 'b'\\)"):
        read_mat(path, ("X",))
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(MatError, match=f"{path}: truncated"):
        read_mat(path)
    write_mat(path, {"a": a})
    path.write_bytes(path.read_bytes()[:128] + b"\x0f\0\0\0\x20\0\0\0" + b"\x78\x9c" + b"\xff" * 30)
    with pytest.raises(MatError, match=f"{path}: element at byte 128: corrupt compressed data"):
        read_mat(path)
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" "))
    with pytest.raises(MatError, match="MAT v7.3 file .HDF5."):
        read_mat(path)
    path.write_bytes(b"\0" * 200)
    with pytest.raises(MatError, match="not a MAT v5 file"):
        read_mat(path)
    # a char array is not read, unless it is not asked for
    text = mat_element(14, mat_element(6, np.array([4, 0], "<u4").tobytes())
                       + mat_element(5, np.array([1, 2], "<i4").tobytes())
                       + mat_element(1, b"s") + mat_element(4, b"h\0i\0"), small=False)
    write_mat(path, {"a": a})
    path.write_bytes(path.read_bytes() + text)
    with pytest.raises(MatError, match="variable 's': a char array; only numeric arrays are read"):
        read_mat(path)
    assert list(read_mat(path, ("a",))) == ["a"]
