"""Embedding a dataset with a frozen encoder: labels from sub-folders, the cache key, PCA, k-NN."""

from __future__ import annotations

import numpy as np
import pytest

from mae_core.errors import InvalidParameterError
from mae_service.features import FeatureStore, dataset_classes, nearest, project
from mae_tools.testing import write_checkpoint
from support.labelled_images import make_labelled


def test_embeddings_are_cached_per_checkpoint_dataset_and_pool(tmp_path):
    weights = write_checkpoint(tmp_path / "ckpt", "tiny")
    root = make_labelled(tmp_path / "ds", per_class=3)
    store = FeatureStore(tmp_path / "var")
    key = store.key(weights, root, "cls")
    assert store.key(weights, root, "mean") != key
    store.start(key, weights, root, "cls", "cpu")
    store.wait(key, 60)
    emb = store.cached(key)
    assert emb.vectors.shape == (6, 64) and emb.classes == ["blue", "red"]
    assert emb.labels.tolist() == [0, 0, 0, 1, 1, 1] and emb.files[0] == "blue/blue-000.png"
    assert store.progress(key) == {"done": 6, "total": 6, "running": False, "error": None}
    make_labelled(root, per_class=4)  # a new image changes the dataset, so the key
    assert store.key(weights, root, "cls") != key
    with pytest.raises(InvalidParameterError, match="pool"):
        store.key(weights, root, "max")


def test_a_folder_without_class_sub_folders_is_unlabelled(tmp_path):
    (tmp_path / "a.png").touch()
    (tmp_path / "b" / "c.png").parent.mkdir()
    (tmp_path / "b" / "c.png").touch()
    classes, labels = dataset_classes(tmp_path, [tmp_path / "a.png", tmp_path / "b" / "c.png"])
    assert classes == [] and labels.tolist() == [-1, -1]


def test_pca_axes_explain_the_most_variance_first_and_neighbours_are_by_cosine():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)) * np.array([10, 3, 1, 1, 1, 1, 1, 1])
    coords, info = project(vectors.astype(np.float32))
    assert coords.shape == (50, 2) and info["method"] == "pca"
    assert info["explained_variance"][0] > info["explained_variance"][1] > 0.05
    assert np.std(coords[:, 0]) > np.std(coords[:, 1])
    found = nearest(vectors, vectors[7] * 3.0, k=3)
    assert found[0][0] == 7 and found[0][1] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InvalidParameterError):
        project(vectors, "tsne")


def test_polls_while_computing_reuse_the_running_key(tmp_path, monkeypatch):
    """A poll during the computation does not re-scan the dataset: it reads the running task's
    key, even if the folder changed meanwhile; once done, the key follows the folder again."""
    import threading

    import mae_service.features as features

    weights = write_checkpoint(tmp_path / "ckpt", "tiny")
    root = make_labelled(tmp_path / "ds", per_class=2)
    release = threading.Event()
    real = features.embed_folder

    def held(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "embed_folder", held)
    store = FeatureStore(tmp_path / "var")
    key = store.key_for(weights, root, "cls")
    store.start(key, weights, root, "cls", "cpu")
    make_labelled(root, per_class=3)  # the folder changes while the task runs
    assert store.key_for(weights, root, "cls") == key
    release.set()
    store.wait(key, 60)
    assert store.key_for(weights, root, "cls") != key
