from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from sne_plugin.errors import SNEError
from sne_plugin.research.zoo.datasets import load_dataset


@pytest.mark.parametrize(
    "name", ["digits", "font_digits", "font_letters", "shapes", "gratings", "mixtures"]
)
def test_generated_shapes_and_determinism(name: str) -> None:
    X, y, Xt, _ = load_dataset(name, n=200, seed=3)
    assert X.shape == (160, 1, 8, 8) and Xt.shape == (40, 1, 8, 8)
    assert X.dtype == np.float32 and X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(y)) <= set(range(10))
    np.testing.assert_array_equal(X, load_dataset(name, n=200, seed=3)[0])


def test_seed_changes_generated_data() -> None:
    assert not np.array_equal(
        load_dataset("shapes", n=50, seed=0)[0], load_dataset("shapes", n=50, seed=1)[0]
    )


@pytest.mark.parametrize("name", ["gratings", "mixtures"])
def test_new_generated_sets_are_learnable_but_not_linear(name: str) -> None:
    """A small MLP learns them well above chance; a linear model stays far below it (the
    gratings' random phase and the mixtures' two clusters per class are not linear)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    X, y, Xt, yt = (a.reshape(len(a), -1) if a.ndim > 1 else a for a in load_dataset(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((64,), max_iter=300, random_state=0).fit(X, y).score(Xt, yt)
        linear = LogisticRegression(max_iter=500).fit(X, y).score(Xt, yt)
    assert mlp > 0.55 and mlp > linear + 0.1, (mlp, linear)


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(SNEError, match="did you mean 'shapes'"):
        load_dataset("shape")


def _idx(path, arr: np.ndarray, gz: bool = False) -> None:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_idx_files(tmp_path, name: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 28, 28))
    _idx(raw / "train-images-idx3-ubyte", imgs)
    _idx(raw / "train-labels-idx1-ubyte", np.arange(12) % 10)
    _idx(raw / "t10k-images-idx3-ubyte", imgs[:5], gz=True)
    _idx(raw / "t10k-labels-idx1-ubyte", np.arange(5), gz=True)
    X, y, Xt, _ = load_dataset(name, root=tmp_path, size=7)
    assert X.shape == (12, 1, 7, 7) and Xt.shape == (5, 1, 7, 7)
    np.testing.assert_allclose(X[0, 0, 0, 0], imgs[0, :4, :4].mean() / 255, rtol=1e-5)
    assert y.tolist() == (np.arange(12) % 10).tolist()


def test_mnist_missing_folder(tmp_path) -> None:
    with pytest.raises(SNEError, match="MNIST/raw"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(SNEError, match="pass root="):
        load_dataset("mnist")


def test_cifar_batches(tmp_path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(4, 3072), dtype=np.uint8),
            b"labels": [1, 2, 3, 4],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    X, y, Xt, _ = load_dataset("cifar10", root=tmp_path)
    assert X.shape == (20, 1, 8, 8) and Xt.shape == (4, 1, 8, 8) and y[:4].tolist() == [1, 2, 3, 4]


def test_cifar_refuses_foreign_pickle(tmp_path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": SNEError("x")}))
    with pytest.raises(SNEError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", root=tmp_path)
