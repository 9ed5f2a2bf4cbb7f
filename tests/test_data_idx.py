"""IDX reading, the MNIST-format data sets, checksum-verified download and their errors.

Every file here is written by the tests themselves; nothing is downloaded.
"""

import gzip

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.nn.config import DataConfig
from fewmul.nn.data import (IDX_FILES, download_mnist, load_dataset, quantize_pixels,
                            verify_checksums)
from fewmul.nn.idx import IdxError, md5, read_idx, write_idx


def write_set(directory, n_train=60, n_test=12, gz=True, seed=0):
    """A tiny MNIST-format set: random 28x28 images, labels 0..9 in turn."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = []
    for n in (n_train, n_test):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays += [x, (np.arange(n) % 10).astype(np.uint8)]
    for stem, a in zip(IDX_FILES, arrays):
        write_idx(directory / (stem + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_and_mnist_split(tmp_path, gz):
    arrays = write_set(tmp_path / "m", gz=gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "m" / (IDX_FILES[0] + (".gz" if gz else ""))),
                                  arrays[0])
    data = load_dataset(DataConfig("mnist", 8, str(tmp_path / "m")))
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 12)
    assert data.inputs == 784
    # the validation split is the *last* training images
    np.testing.assert_array_equal(data.val.x, arrays[0][50:].reshape(10, -1))
    np.testing.assert_array_equal(data.val.y, arrays[1][50:])
    low = load_dataset(DataConfig("mnist", 2, str(tmp_path / "m")))
    assert low.train.x.max() == 3 and np.all((low.train.x == 3) == (data.train.x >= 213))


def test_fashion_mnist_from_a_directory(tmp_path):
    write_set(tmp_path / "f")
    data = load_dataset(DataConfig("fashion-mnist", 8, str(tmp_path / "f")))
    assert data.name == "fashion-mnist" and len(data.test) == 12


def corrupt(path, how):
    raw = gzip.decompress(path.read_bytes())
    if how == "magic":
        raw = b"\x00\x00\x07\x03" + raw[4:]
    elif how == "truncated":
        raw = raw[:-5]
    elif how == "trailing":
        raw = raw + b"\x00"
    path.write_bytes(gzip.compress(raw))


@pytest.mark.parametrize("how, message", [
    ("magic", "wrong magic number 0x00000703"),
    ("truncated", "truncated"),
    ("trailing", "trailing bytes"),
])
def test_bad_idx_files_name_the_file(tmp_path, how, message):
    write_set(tmp_path / "m")
    bad = tmp_path / "m" / "t10k-images-idx3-ubyte.gz"
    corrupt(bad, how)
    with pytest.raises(IdxError, match=message) as e:
        load_dataset(DataConfig("mnist", 8, str(tmp_path / "m")))
    assert str(bad) in str(e.value)


def test_corrupt_gzip_and_count_mismatch(tmp_path):
    write_set(tmp_path / "m")
    gz = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    with pytest.raises(IdxError, match="corrupt or truncated gzip") as e:
        load_dataset(DataConfig("mnist", 8, str(tmp_path / "m")))
    assert str(gz) in str(e.value)
    write_set(tmp_path / "m")
    write_idx(tmp_path / "m" / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8))
    with pytest.raises(IdxError, match="59 labels but .*train-images-idx3-ubyte.gz has 60 images"):
        load_dataset(DataConfig("mnist", 8, str(tmp_path / "m")))


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="fewmul data mnist --download"):
        load_dataset(DataConfig("mnist", 8, str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="make data"):
        load_dataset(DataConfig("fashion-mnist", 8, str(tmp_path)))


def test_download_verifies_checksums(tmp_path):
    src = tmp_path / "mirror"
    write_set(src)
    names = [s + ".gz" for s in IDX_FILES]
    good = {n: md5(src / n) for n in names}
    url = src.as_uri() + "/"
    cache = tmp_path / "cache"
    log = []
    download_mnist(cache, urls=("file:///nonexistent/", url), checksums=good, log=log.append)
    assert sorted(p.name for p in cache.iterdir()) == sorted(names)
    assert verify_checksums(cache, good) == []
    assert load_dataset(DataConfig("mnist", 8, str(cache))).inputs == 784
    download_mnist(cache, urls=(url,), checksums=good, log=log.append)      # second time: kept
    assert sum("present, MD5 OK" in line for line in log) == 4
    # a mirror serving a different file: refused, nothing left behind under the final name
    bad = dict(good, **{names[0]: "0" * 32})
    (cache / names[0]).unlink()
    with pytest.raises(ValueError, match=f"{names[0]}.*MD5 {good[names[0]]}, expected 0{{32}}"):
        download_mnist(cache, urls=(url,), checksums=bad, log=log.append)
    assert not (cache / names[0]).exists() and not list(cache.glob("*.part"))
    (cache / names[1]).write_bytes(b"junk")
    assert [p for p in verify_checksums(cache, good) if "MD5" in p][0].startswith(str(cache / names[1]))


def test_data_command(tmp_path, capsys):
    write_set(tmp_path / "m", gz=False)
    assert main(["data", "mnist", "--dir", str(tmp_path / "m")]) == 0
    assert "train 50, validation 10, test 12" in capsys.readouterr().out
    assert main(["data", "mnist", "--dir", str(tmp_path / "empty")]) == 2
    assert "fewmul data mnist --download" in capsys.readouterr().err
    assert main(["data", "fashion-mnist", "--download"]) == 2
    assert "make data" in capsys.readouterr().err


def test_train_reads_mnist_from_data_dir(tmp_path, capsys):
    write_set(tmp_path / "m")
    spec = tmp_path / "tiny-mnist.yaml"
    spec.write_text("data: {set: mnist}\nlayers:\n  - {units: 16, weights: ternary, act: relu}\n"
                    "  - {units: 10, weights: ternary, act: none}\ntrain: {epochs: 1, qbp: true}\n")
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "--data-dir", str(tmp_path / "m"),
                 "-q"]) == 0
    assert "integer golden model" in capsys.readouterr().out
    assert f"dir: {tmp_path / 'm'}" in (tmp_path / "run" / "spec.yaml").read_text()


@pytest.mark.parametrize("bits", range(1, 9))
def test_quantize_pixels_of_bytes_round_to_nearest(bits):
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    levels = (1 << bits) - 1
    q = quantize_pixels(v, 255, bits)
    assert q.dtype == np.uint8 and q.shape == v.shape
    np.testing.assert_array_equal(q.ravel(), np.floor(np.arange(256) * levels / 255 + 0.5))
    # other integer types give the same values
    np.testing.assert_array_equal(quantize_pixels(v.astype(np.int32), 255, bits), q)
    np.testing.assert_array_equal(quantize_pixels(v[:2, :9] // 15, 16, bits),
                                  quantize_pixels((v[:2, :9] // 15).astype(np.int64), 16, bits))
