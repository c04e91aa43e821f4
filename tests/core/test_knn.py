"""k-NN evaluation on frozen features: the weighted vote, the report, and a run on a two-class
image folder made here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mae_core import create_model
from mae_core.errors import InvalidParameterError
from mae_core.evaluation.knn import KnnConfig, knn_classify, knn_scores
from mae_core.evaluation.report import classification_report


def test_votes_are_cosine_neighbours_weighted_by_exp_similarity_over_temperature():
    train = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])  # scale must not matter
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 1.0]])
    votes = knn_scores(train, labels, test, num_classes=2, k=3, temperature=0.5)
    sims = torch.nn.functional.normalize(train, dim=1) @ torch.nn.functional.normalize(test, dim=1)[0]
    top = sims.topk(3).indices.tolist()
    expected = [sum(math.exp(sims[i] / 0.5) for i in top if labels[i] == c) for c in (0, 1)]
    torch.testing.assert_close(votes[0], torch.tensor(expected))
    # k larger than the training set is capped, not an error
    assert knn_scores(train, labels, test, 2, k=50).shape == (1, 2)
    with pytest.raises(InvalidParameterError):
        knn_scores(train, labels, test, 2, k=0)


def test_report_has_confusion_per_class_accuracy_and_top5_only_past_five_classes():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    report = classification_report(scores, torch.tensor([0, 1, 1]), ["cat", "dog"])
    assert report["confusion"] == [[1, 0], [1, 1]]
    assert [c["accuracy"] for c in report["per_class"]] == [100.0, 50.0]
    assert report["top1"] == pytest.approx(200 / 3) and "top5" not in report
    many = classification_report(torch.eye(6), torch.arange(6), [str(i) for i in range(6)])
    assert many["top1"] == 100.0 and many["top5"] == 100.0


def _two_class_folder(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 40, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_knn_separates_a_two_class_folder_and_writes_knn_json(tmp_path):
    train = _two_class_folder(tmp_path / "train", 6, seed=0)
    val = _two_class_folder(tmp_path / "val", 3, seed=1)
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch16", img_size=32, embed_dim=64, depth=2, num_heads=4,
                         decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
    result = knn_classify(KnnConfig(train_dir=str(train), val_dir=str(val), output_dir=str(tmp_path / "out"),
                                    k=5, device="cpu"), model=model)
    assert result["top1"] == 100.0 and result["confusion"] == [[3, 0], [0, 3]]
    assert result["classes"] == ["blue", "red"] and result["num_train"] == 12
    assert (tmp_path / "out" / "knn.json").is_file()


def test_mae_eval_knn_prints_top1_and_writes_knn_json(tmp_path, capsys):
    from mae_cli import main
    from mae_tools.testing import write_checkpoint

    train = _two_class_folder(tmp_path / "train", 4, seed=0)
    val = _two_class_folder(tmp_path / "val", 2, seed=1)
    ckpt = write_checkpoint(tmp_path / "ckpt", "tiny")
    assert main(["eval", "knn", "--checkpoint", str(ckpt), "--train", str(train), "--val", str(val),
                 "--output-dir", str(tmp_path / "out"), "--k", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert '"top1"' in printed and '"top5"' not in printed
    assert (tmp_path / "out" / "knn.json").is_file()
