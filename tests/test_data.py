"""Datasets in their real on-disk formats, loaded through the real loaders; the data stream.

Every dataset here is written by the test in the format the real download has: CIFAR-10 as
Python-2 protocol-2 pickles assembled opcode by opcode (as the original files are), STL-10 as
column-major uint8 binaries, CelebA as 178x218 JPEGs under img_align_celeba/, and an image folder.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import pickle
import socket
import struct
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from transgan_lab.trainers import data as D
from transgan_lab.trainers.data import DATASETS, DatasetError, DataStream, build_dataset


def cfg(**kw) -> SimpleNamespace:
    base = dict(
        dataset="digits",
        root=None,
        resolution=16,
        channels=1,
        hflip=False,
        download=False,
        upscale="bilinear",
        loader_workers=0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


# ----------------------------------------------------------------------- format writers


def _s(b: bytes | str) -> bytes:
    """A Python 2 `str` as pickle protocol 2 writes it (SHORT_BINSTRING / BINSTRING)."""
    b = b.encode("latin1") if isinstance(b, str) else b
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _int(i: int) -> bytes:
    return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)


def _py2_uint8_array(a: np.ndarray) -> bytes:
    """numpy 1.x on Python 2: ndarray.__reduce__ = (_reconstruct, (ndarray, (0,), 'b'), state)."""
    assert a.dtype == np.uint8 and a.ndim == 2
    dtype = (
        b"cnumpy\ndtype\n"
        + _s("u1")
        + _int(0)
        + _int(1)
        + b"\x87R"  # dtype('u1', 0, 1)
        + b"("
        + _int(3)
        + _s("|")
        + b"NNN"
        + _int(-1)
        + _int(-1)
        + _int(0)
        + b"tb"
    )
    state = b"(" + _int(1) + _int(a.shape[0]) + _int(a.shape[1]) + b"\x86" + dtype + b"\x89" + _s(a.tobytes()) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _int(0)
        + b"\x85"
        + _s("b")
        + b"\x87R"
        + state
        + b"b"
    )


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """One `data_batch_N` as the CIFAR-10 python archive has it (a Python 2 cPickle, protocol 2)."""
    out = b"\x80\x02}(" + _s("batch_label") + _s("training batch 1 of 5")
    out += _s("labels") + b"](" + b"".join(_int(v) for v in labels) + b"e"
    out += _s("data") + _py2_uint8_array(images.reshape(len(images), 3072))
    out += _s("filenames") + b"](" + b"".join(_s(f"img_{i}.png") for i in range(len(images))) + b"e"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out + b"u.")


def write_stl_bin(path: Path, images: np.ndarray) -> None:
    """uint8 (N, 3, H=96, W=96) -> the STL-10 binary layout: each channel plane column-major."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("cifar10")
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, size=(10, 3, 32, 32)).astype(np.uint8)
    sizes = [3, 2, 2, 2, 1]
    start = 0
    for i, n in enumerate(sizes, 1):
        write_cifar_batch(root / "cifar-10-batches-py" / f"data_batch_{i}", x[start : start + n], [i] * n)
        start += n
    return root, x


@pytest.fixture(scope="module")
def stl_root(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("stl10")
    rng = np.random.RandomState(1)
    x = rng.randint(0, 256, size=(8, 3, 96, 96)).astype(np.uint8)
    x[:, 0] = np.arange(96, dtype=np.uint8)[None, None, :] * 2  # red grows left -> right (x axis)
    write_stl_bin(root / "stl10_binary" / "train_X.bin", x[:3])
    write_stl_bin(root / "stl10_binary" / "unlabeled_X.bin", x[3:])
    return root, x


@pytest.fixture(scope="module")
def digits():
    return build_dataset(cfg(dataset="digits", resolution=16, channels=1))


# ------------------------------------------------------------------------------------- digits


def test_digits_count_range_and_nearest_reference(digits):
    from sklearn.datasets import load_digits

    assert len(digits) == 1797
    assert digits[0].shape == (1, 16, 16) and digits[0].dtype == torch.float32
    assert digits.images.min().item() == -1.0 and digits.images.max().item() == 1.0
    raw = torch.from_numpy(load_digits().images).float()  # (1797, 8, 8), 0..16
    near = build_dataset(cfg(resolution=32, channels=3, upscale="nearest"))
    assert near.images.shape == (1797, 3, 32, 32)
    ref = (raw / 16 * 2 - 1).repeat_interleave(4, 1).repeat_interleave(4, 2)  # each pixel -> 4x4 block
    for c in range(3):
        torch.testing.assert_close(near.images[:, c], ref, rtol=0, atol=1e-6)


def test_digits_bilinear_matches_pil_and_differs_from_nearest(digits):
    from sklearn.datasets import load_digits

    raw = load_digits().images.astype(np.float32) / 16
    for i in (0, 7, 1796):
        pil = np.asarray(Image.fromarray(raw[i], mode="F").resize((16, 16), Image.BILINEAR))  # half-pixel centres
        np.testing.assert_allclose(digits.images[i, 0].numpy(), pil * 2 - 1, atol=1e-5)
    near = D.digits_images(resolution=16, channels=1, upscale="nearest")
    diff = (near - digits.images).abs().mean().item()
    assert diff > 0.05  # the filter matters (the digits metric sees it)
    bic = D.digits_images(resolution=16, channels=1, upscale="bicubic")
    assert bic.min() >= -1 and bic.max() <= 1  # clamped overshoot


def test_digits_resolution_must_be_multiple_of_8():
    with pytest.raises(DatasetError, match=r"data.resolution=20 .*multiple of 8"):
        build_dataset(cfg(resolution=20))


# ----------------------------------------------------------------------------------- CIFAR-10


def test_cifar10_loads_python2_pickles(cifar_root):
    root, x = cifar_root
    ds = build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=3))
    assert len(ds) == 10 and ds.images.dtype == torch.uint8
    got = ds.get_batch(range(10))
    assert got.shape == (10, 3, 32, 32)
    torch.testing.assert_close(got, torch.from_numpy(x).float() / 127.5 - 1, rtol=0, atol=1e-6)
    assert got.min() >= -1 and got.max() <= 1
    # the root may also be the extracted folder itself
    ds2 = build_dataset(cfg(dataset="cifar10", root=str(root / "cifar-10-batches-py"), resolution=32, channels=3))
    assert torch.equal(ds2.images, ds.images)


def test_cifar10_grey_and_resize(cifar_root):
    root, x = cifar_root
    grey = build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=1))
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).round()  # BT.601, as PIL "L"
    assert grey[4].shape == (1, 32, 32)
    np.testing.assert_allclose(grey.images[:, 0].numpy(), luma, atol=1)
    small = build_dataset(cfg(dataset="cifar10", root=str(root), resolution=16, channels=3))
    assert small[0].shape == (3, 16, 16)
    ref = np.asarray(Image.fromarray(x[2, 1].astype(np.float32), mode="F").resize((16, 16), Image.BILINEAR))
    np.testing.assert_allclose(small.images[2, 1].numpy(), ref, atol=0.51)  # stored as rounded uint8


def test_cifar10_missing_batch_names_every_expected_file(tmp_path, cifar_root):
    src, _ = cifar_root
    root = tmp_path / "c10"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    for i in (1, 2, 4, 5):
        name = f"data_batch_{i}"
        (root / "cifar-10-batches-py" / name).write_bytes((src / "cifar-10-batches-py" / name).read_bytes())
    with pytest.raises(DatasetError) as e:
        build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=3))
    msg = str(e.value)
    assert str(root / "cifar-10-batches-py" / "data_batch_1") in msg
    assert str(root / "cifar-10-batches-py" / "data_batch_5") in msg
    assert "missing: data_batch_3." in msg
    assert "CIFAR-10 python version" in msg and "data.download=true" in msg and "cifar.html" in msg


def test_cifar10_truncated_batch(tmp_path, cifar_root):
    src, _ = cifar_root
    root = tmp_path / "c10"
    for i in range(1, 6):
        blob = (src / "cifar-10-batches-py" / f"data_batch_{i}").read_bytes()
        if i == 2:
            blob = blob[: len(blob) // 2]
        (root / "cifar-10-batches-py").mkdir(parents=True, exist_ok=True)
        (root / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(blob)
    with pytest.raises(DatasetError, match=r"data_batch_2 is truncated or corrupt.*extract cifar-10-python.tar.gz"):
        build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=3))


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_pickle_that_runs_code_is_refused(tmp_path, cifar_root):
    src, _ = cifar_root
    marker = tmp_path / "pwned"
    root = tmp_path / "c10"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    for i in range(1, 6):
        (root / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(
            (src / "cifar-10-batches-py" / f"data_batch_{i}").read_bytes()
        )
    evil = pickle.dumps({"data": _RunsCode(marker), "labels": [0]}, protocol=2)
    assert b"system" in evil  # a plain pickle.load of this would run `touch`
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(
        DatasetError, match=r"data_batch_3 is not a plain CIFAR-10 batch \(refusing to load (posix|os)\.system"
    ):
        build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=3))
    assert not marker.exists()


def test_cifar10_resaved_by_python3_and_wrong_content(tmp_path):
    p = tmp_path / "data_batch_1"
    x = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    for protocol in (4, 5):  # a batch re-saved by numpy 2 on Python 3 (numpy._core names, _frombuffer)
        p.write_bytes(pickle.dumps({"data": x, "labels": [1, 2]}, protocol=protocol))
        np.testing.assert_array_equal(D.load_cifar_batch(p), x.reshape(2, 3, 32, 32))
    p.write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8)}, protocol=4))
    with pytest.raises(DatasetError, match=r"uint8 array of shape \(N, 3072\).*\(2, 10\)"):
        D.load_cifar_batch(p)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder (the stand-in for the dataset's web site)."""
    served = tmp_path / "www"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_cifar10_download_fetches_checks_and_extracts(tmp_path, cifar_root, http_dir, monkeypatch):
    src, x = cifar_root
    served, url = http_dir
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # the real archive's layout: cifar-10-batches-py/data_batch_N
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(D.DOWNLOADS, "cifar10", (f"{url}/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", md5))
    root = tmp_path / "fresh"
    ds = build_dataset(cfg(dataset="cifar10", root=str(root), resolution=32, channels=3, download=True))
    assert len(ds) == 10 and (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    torch.testing.assert_close(ds.get_batch([9]), torch.from_numpy(x[9:]).float() / 127.5 - 1, rtol=0, atol=1e-6)
    # a corrupted download (md5 mismatch) and an unreachable server both end in a DatasetError
    monkeypatch.setitem(D.DOWNLOADS, "cifar10", (f"{url}/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", "0" * 32))
    with pytest.raises(
        DatasetError,
        match=r"cifar10: downloading .* failed \(RuntimeError: File not found or corrupted.*failed its md5 check",
    ):
        build_dataset(cfg(dataset="cifar10", root=str(tmp_path / "again"), resolution=32, channels=3, download=True))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound but not listening: connection refused
        monkeypatch.setitem(D.DOWNLOADS, "cifar10", (f"http://127.0.0.1:{dead}/c.tar.gz", "c.tar.gz", md5))
        with pytest.raises(DatasetError) as e:
            build_dataset(
                cfg(dataset="cifar10", root=str(tmp_path / "offline"), resolution=32, channels=3, download=True)
            )
    msg = str(e.value)
    assert "network may be unavailable" in msg and "cifar.html" in msg and "Traceback" not in msg


# ------------------------------------------------------------------------------------- STL-10


def test_stl10_binary_column_major_and_resize(stl_root):
    root, x = stl_root
    full = build_dataset(cfg(dataset="stl10", root=str(root), resolution=96, channels=3))
    assert len(full) == 8  # train (3) first, then unlabeled (5)
    got = full.get_batch([7, 0, 3, 2])
    torch.testing.assert_close(got, torch.from_numpy(x[[7, 0, 3, 2]]).float() / 127.5 - 1, rtol=0, atol=1e-6)
    assert got[0, 0, 5, 0] < got[0, 0, 5, 95]  # red grows along x after un-transposing
    ds = build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=3))
    img = ds[4]
    assert img.shape == (3, 48, 48) and img.min() >= -1 and img.max() <= 1
    for c in range(3):
        ref = np.asarray(Image.fromarray(x[4, c].astype(np.float32), mode="F").resize((48, 48), Image.BILINEAR))
        np.testing.assert_allclose(img[c].numpy(), ref / 127.5 - 1, atol=1e-4)
    grey = build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=1))
    assert grey[4].shape == (1, 48, 48)
    torch.testing.assert_close(grey[4][0], 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2], rtol=0, atol=1e-4)


def test_stl10_missing_and_truncated(tmp_path, stl_root):
    src, _ = stl_root
    root = tmp_path / "stl"
    (root / "stl10_binary").mkdir(parents=True)
    (root / "stl10_binary" / "train_X.bin").write_bytes((src / "stl10_binary" / "train_X.bin").read_bytes())
    with pytest.raises(DatasetError) as e:
        build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=3))
    msg = str(e.value)
    assert str(root / "stl10_binary" / "train_X.bin") in msg and str(root / "stl10_binary" / "unlabeled_X.bin") in msg
    assert "missing: unlabeled_X.bin" in msg and "stl10_binary.tar.gz" in msg and "data.download=true" in msg
    (root / "stl10_binary.tar.gz").write_bytes(b"downloaded, not extracted")
    with pytest.raises(
        DatasetError, match=r"Found the archive .*stl10_binary.tar.gz but not its contents: extract it with `tar -xzf"
    ):
        build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=3))
    blob = (src / "stl10_binary" / "unlabeled_X.bin").read_bytes()
    (root / "stl10_binary" / "unlabeled_X.bin").write_bytes(blob[:-1000])
    with pytest.raises(DatasetError, match=r"unlabeled_X.bin has \d+ bytes, not a whole number .* truncated"):
        build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=3))


# --------------------------------------------------------------------------- CelebA, folder


def _celeba_face(i: int) -> Image.Image:
    """178x218 like img_align_celeba: 12 red rows on top, 12 blue at the bottom, grey in between
    (the 178x178 centre square starts 20 rows down, clear of JPEG's 8x8 blocks around the bands)."""
    a = np.full((218, 178, 3), 100 + 20 * i, np.uint8)
    a[:12] = (255, 0, 0)
    a[-12:] = (0, 0, 255)
    return Image.fromarray(a)


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    for i in range(3):
        _celeba_face(i).save(root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=95, subsampling=0)
    return root


def test_celeba_centre_crop_drops_the_bands(celeba_root):
    ds = build_dataset(cfg(dataset="celeba", root=str(celeba_root), resolution=64, channels=3))
    assert len(ds) == 3
    x = ds.get_batch([0, 1, 2])
    assert x.shape == (3, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    for i in range(3):  # the 178x178 centre square is pure grey: no red/blue band survives
        grey = (100 + 20 * i) / 127.5 - 1
        assert (x[i] - grey).abs().max().item() < 0.05
    small = build_dataset(cfg(dataset="celeba", root=str(celeba_root / "img_align_celeba"), resolution=16, channels=1))
    assert small[2].shape == (1, 16, 16)


def test_celeba_missing_and_truncated(tmp_path, celeba_root):
    with pytest.raises(DatasetError) as e:
        build_dataset(cfg(dataset="celeba", root=str(tmp_path / "nothing"), resolution=64, channels=3, download=True))
    msg = str(e.value)
    assert str(tmp_path / "nothing" / "img_align_celeba" / "000001.jpg") in msg
    assert "img_align_celeba.zip" in msg and "Google Drive" in msg and "cannot fetch" in msg
    root = tmp_path / "c"
    (root / "img_align_celeba").mkdir(parents=True)
    blob = (celeba_root / "img_align_celeba" / "000001.jpg").read_bytes()
    (root / "img_align_celeba" / "000001.jpg").write_bytes(blob[: len(blob) // 3])
    ds = build_dataset(cfg(dataset="celeba", root=str(root), resolution=64, channels=3))
    with pytest.raises(DatasetError, match=r"cannot read .*000001.jpg .*truncated or not an image"):
        ds[0]


def test_folder_recursive_formats_and_exact_values(tmp_path):
    rng = np.random.RandomState(2)
    exact = rng.randint(0, 256, size=(16, 16, 3)).astype(np.uint8)
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(exact).save(tmp_path / "a" / "0.png")
    wide = np.zeros((16, 32, 3), np.uint8)
    wide[:, 8:24] = 200  # the centre square is uniform, the side bands black
    Image.fromarray(wide).save(tmp_path / "a" / "b" / "1.bmp")
    Image.fromarray(exact).save(tmp_path / "a" / "b" / "2.webp", lossless=True)
    yy, xx = np.mgrid[0:16, 0:16]
    smooth = np.stack([yy * 12, xx * 12, (yy + xx) * 6], -1).astype(np.uint8)  # jpeg keeps gradients
    Image.fromarray(smooth).save(tmp_path / "3.JPG", quality=95)
    Image.fromarray(exact).convert("RGBA").save(tmp_path / "4.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = build_dataset(cfg(dataset="folder", root=str(tmp_path), resolution=16, channels=3))
    assert [p.name for p in ds.files] == ["3.JPG", "4.png", "0.png", "1.bmp", "2.webp"]
    ref = torch.from_numpy(exact).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(ds[2], ref, rtol=0, atol=1e-6)  # png: lossless, exact
    torch.testing.assert_close(ds[4], ref, rtol=0, atol=1e-6)  # lossless webp
    torch.testing.assert_close(ds[1], ref, rtol=0, atol=1e-6)  # RGBA -> RGB
    torch.testing.assert_close(ds[3], torch.full((3, 16, 16), 200 / 127.5 - 1), rtol=0, atol=1e-6)
    smooth_ref = torch.from_numpy(smooth).permute(2, 0, 1).float() / 127.5 - 1
    assert (ds[0] - smooth_ref).abs().mean() < 0.03  # jpeg: lossy but close
    grey = build_dataset(cfg(dataset="folder", root=str(tmp_path), resolution=8, channels=1))
    assert grey.get_batch([0, 1]).shape == (2, 1, 8, 8)


def test_loader_workers_decode_in_parallel_to_the_same_batch(tmp_path, celeba_root):
    """data.loader_workers threads give the batch one thread gives, and a bad file still names itself."""
    rng = np.random.RandomState(5)
    for i in range(12):  # mixed sizes and formats, so the decode times differ and threads finish out of order
        a = rng.randint(0, 256, size=(20 + 7 * i, 30 + 3 * i, 3)).astype(np.uint8)
        Image.fromarray(a).save(tmp_path / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    serial = build_dataset(cfg(dataset="folder", root=str(tmp_path), resolution=16, channels=3))
    threaded = build_dataset(cfg(dataset="folder", root=str(tmp_path), resolution=16, channels=3, loader_workers=3))
    order = [11, 0, 5, 5, 3, 9, 2, 8, 1, 10, 4, 7, 6]
    before = {t.name for t in threading.enumerate()}
    torch.testing.assert_close(threaded.get_batch(order), serial.get_batch(order), rtol=0, atol=0)
    started = {t.name for t in threading.enumerate()} - before
    assert any(n.startswith("folder-decode") for n in started), started  # the threaded path ran
    faces = build_dataset(cfg(dataset="celeba", root=str(celeba_root), resolution=32, channels=3, loader_workers=2))
    torch.testing.assert_close(
        faces.get_batch([2, 0, 1]),
        build_dataset(cfg(dataset="celeba", root=str(celeba_root), resolution=32, channels=3)).get_batch([2, 0, 1]),
        rtol=0,
        atol=0,
    )
    (tmp_path / "05.png").write_bytes((tmp_path / "05.png").read_bytes()[:60])  # truncated
    with pytest.raises(DatasetError, match=r"cannot read .*05.png .*truncated"):
        threaded.get_batch([0, 5, 6])


def test_folder_empty_or_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"expected image files under .*does not exist"):
        build_dataset(cfg(dataset="folder", root=str(tmp_path / "nope"), resolution=16, channels=3))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"holds no images.*png, jpg, jpeg, webp, bmp"):
        build_dataset(cfg(dataset="folder", root=str(tmp_path), resolution=16, channels=3))


def test_registry_and_bad_config():
    assert set(DATASETS) == {"digits", "cifar10", "stl10", "celeba", "folder"}
    with pytest.raises(DatasetError, match=r"data.dataset='mnist': unknown dataset"):
        build_dataset(cfg(dataset="mnist"))
    with pytest.raises(DatasetError, match=r"data.channels=2"):
        build_dataset(cfg(channels=2))


# --------------------------------------------------------------------------------- DataStream


def _take(stream: DataStream, k: int) -> list[torch.Tensor]:
    return [stream.next_batch() for _ in range(k)]


def test_stream_same_global_batches_for_any_world_size(digits):
    one = DataStream(digits, global_batch=96, seed=5)
    ref = _take(one, 40)  # 40 x 96 = 3840 images: crosses two epoch boundaries mid-batch
    for world in (2, 4):
        ranks = [DataStream(digits, global_batch=96, seed=5, rank=r, world_size=world) for r in range(world)]
        for k in range(40):
            parts = [s.next_batch() for s in ranks]
            assert parts[0].shape == (96 // world, 1, 16, 16)
            assert torch.equal(torch.cat(parts), ref[k])
    assert one.epoch == 3840 // 1797 == 2 and one.state_dict()["position"] == 3840


def test_stream_epochs_are_permutations_and_seed_matters(digits):
    s = DataStream(digits, global_batch=64, seed=1)
    idx0, _ = s.indices(0, 1797)
    idx1, _ = s.indices(1797, 1797)
    assert sorted(idx0.tolist()) == list(range(1797)) == sorted(idx1.tolist())
    assert not torch.equal(idx0, idx1)  # a fresh permutation each epoch
    first = torch.cat(_take(s, 28))[:1797]  # 28 x 64 = 1792 ... the batches run on without a gap
    torch.testing.assert_close(first[:1792], digits.get_batch(idx0[:1792]), rtol=0, atol=0)
    other, _ = DataStream(digits, global_batch=64, seed=2).indices(0, 1797)
    assert not torch.equal(idx0, other)


def test_stream_resume_continues_exactly(digits):
    a = DataStream(digits, global_batch=32, seed=9, hflip=True)
    _take(a, 70)
    sd = a.state_dict()
    expect = _take(a, 20)
    b = DataStream(digits, global_batch=32, seed=9, rank=1, world_size=2, hflip=True)
    c = DataStream(digits, global_batch=32, seed=9, rank=0, world_size=2, hflip=True)
    b.load_state_dict(sd)
    c.load_state_dict(dict(sd))
    for k in range(20):
        assert torch.equal(torch.cat([c.next_batch(), b.next_batch()]), expect[k])
    with pytest.raises(ValueError, match="seed 9"):
        DataStream(digits, global_batch=32, seed=10).load_state_dict(sd)
    with pytest.raises(ValueError, match="multiple of world_size=3"):
        DataStream(digits, global_batch=32, seed=9, world_size=3)


def test_stream_flips_deterministic_per_index(digits):
    s = DataStream(digits, global_batch=1797, seed=4, hflip=True)
    idx, flip = s.indices(0, 1797)
    x = s.next_batch()
    plain = digits.get_batch(idx)
    assert torch.equal(x[flip], plain[flip].flip(-1)) and torch.equal(x[~flip], plain[~flip])
    assert 0.45 < flip.float().mean().item() < 0.55
    # per (seed, epoch, index): the same image flips the same way however it is reached
    t = DataStream(digits, global_batch=1797, seed=4, hflip=True)
    idx_t, flip_t = t.indices(0, 1797)
    assert torch.equal(flip_t, flip)
    by_index0 = torch.zeros(1797, dtype=torch.bool)
    by_index0[idx] = flip
    idx1, flip1 = s.indices(1797, 1797)
    by_index1 = torch.zeros(1797, dtype=torch.bool)
    by_index1[idx1] = flip1
    assert (by_index0 != by_index1).float().mean() > 0.3  # epochs flip independently
    noflip = DataStream(digits, global_batch=1797, seed=4)
    assert torch.equal(noflip.next_batch(), plain)


def test_stream_file_backed_prefetch_is_deterministic(stl_root):
    root, _ = stl_root
    ds = build_dataset(cfg(dataset="stl10", root=str(root), resolution=48, channels=3))
    assert not ds.in_memory
    with DataStream(ds, global_batch=6, seed=0, hflip=True, prefetch=0) as plain:
        ref = _take(plain, 7)  # 42 images over 8: five epochs
    with DataStream(ds, global_batch=6, seed=0, hflip=True, prefetch=3) as pre:
        got = _take(pre, 3)
        sd = pre.state_dict()
        got += _take(pre, 4)
        pre.load_state_dict(sd)  # rewinding drops the batches prefetched past this point
        again = _take(pre, 4)
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    for a, b in zip(ref[3:], again):
        assert torch.equal(a, b)
    with DataStream(ds, global_batch=6, seed=0, hflip=True, rank=2, world_size=3) as r2:
        assert torch.equal(r2.next_batch(), ref[0][4:6])


def test_stream_batch_larger_than_dataset_spans_epochs(stl_root):
    root, x = stl_root
    ds = build_dataset(cfg(dataset="stl10", root=str(root), resolution=96, channels=3))
    s = DataStream(ds, global_batch=20, seed=3, prefetch=0)  # 8 images: one batch covers 2.5 epochs
    batch = s.next_batch()
    idx, _ = s.indices(0, 20)
    assert sorted(idx[:8].tolist()) == list(range(8)) == sorted(idx[8:16].tolist())
    torch.testing.assert_close(batch, torch.from_numpy(x[idx.numpy()]).float() / 127.5 - 1, rtol=0, atol=1e-6)
    assert s.epoch == 2 and s.epoch_progress == 2.5
