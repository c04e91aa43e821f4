import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mae_cli import main
from mae_core import InvalidParameterError, create_model, save_model
from mae_core.evaluation import LinprobeConfig, linear_probe
from mae_core.evaluation.data import topk_accuracy
from mae_core.evaluation.finetune import (
    FinetuneConfig, MAEClassifier, freeze_for_partial, layer_decay_groups, make_criterion,
)
from mae_core.pos_embed import sincos_2d
from support.train_helpers import TINY

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 220, 60)]


def _labelled(root, per_class, seed):
    """Four classes: noisy images around a class colour, with a class-specific stripe pattern."""
    rng = np.random.default_rng(seed)
    for c, colour in enumerate(COLOURS):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = np.array(colour, dtype=np.float64) + rng.normal(0, 30, (32, 32, 3))
            img[:, c * 8:(c + 1) * 8] *= 0.5
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    base = tmp_path_factory.mktemp("labelled")
    return _labelled(base / "train", 12, 0), _labelled(base / "val", 6, 1)


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, **TINY)
    with torch.no_grad():  # pretrained-looking final norm, so using it or not makes a difference
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.normal_(0, 0.5)
    return model


def _blocks_output(encoder, imgs):
    """Tokens after the last block, before the final norm: [N, 1+L, D] (the official forward)."""
    x = encoder.patch_embed(imgs) + encoder.pos_embed[:, 1:]
    cls = (encoder.cls_token + encoder.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    for block in encoder.blocks:
        x = block(x)
    return x


# ---------------------------------------------------------------- the classifier (models_vit.py)

def test_global_pool_head_sees_fc_norm_of_mean_patch_token_without_the_final_norm(encoder):
    clf = MAEClassifier(encoder, 4, pool="mean").eval()
    with torch.no_grad():
        clf.fc_norm.weight.uniform_(0.5, 1.5)
        clf.fc_norm.bias.normal_(0, 0.5)
        imgs = torch.randn(3, 3, 32, 32)
        head_input = clf.forward_head(clf.forward_features(imgs), pre_logits=True)
        tokens = _blocks_output(encoder.eval(), imgs)
        expected = clf.fc_norm(tokens[:, 1:].mean(dim=1))
        old_rule = clf.fc_norm(encoder.norm(tokens)[:, 1:].mean(dim=1))  # norm then pool
    torch.testing.assert_close(head_input, expected, atol=1e-5, rtol=1e-5)
    assert (head_input - old_rule).abs().mean() > 0.05
    names = set(clf.state_dict())
    assert "fc_norm.weight" in names and "norm.weight" not in names  # models_vit: del self.norm


def test_cls_pool_head_sees_final_norm_of_cls_token_and_has_no_fc_norm(encoder):
    clf = MAEClassifier(encoder, 4, pool="cls").eval()
    with torch.no_grad():
        imgs = torch.randn(3, 3, 32, 32)
        head_input = clf.forward_head(clf.forward_features(imgs), pre_logits=True)
        expected = encoder.eval().norm(_blocks_output(encoder, imgs))[:, 0]
    torch.testing.assert_close(head_input, expected, atol=1e-5, rtol=1e-5)
    names = set(clf.state_dict())
    assert "norm.weight" in names and not any(n.startswith("fc_norm") for n in names)
    torch.testing.assert_close(clf.norm.weight, encoder.norm.weight)  # the pretrained norm


def test_parameters_are_the_official_fine_tuning_models(encoder):
    clf = MAEClassifier(encoder, 4)
    per_block = [f"{m}.{t}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
                 for t in ("weight", "bias")]
    official = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                "fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias",
                *(f"blocks.{i}.{n}" for i in range(2) for n in per_block)}
    assert set(clf.state_dict()) == official
    # full fine-tuning trains every one of them: pos_embed included
    assert {n for n, p in clf.named_parameters() if p.requires_grad} == official
    torch.testing.assert_close(clf.pos_embed, encoder.pos_embed)  # same size: copied as is


def test_lr_scales_and_weight_decay_are_the_officials(encoder):
    clf = MAEClassifier(encoder, 4)
    ld, depth = 0.5, 2
    groups = layer_decay_groups(clf, 0.05, ld)
    by_name = {n: g for g in groups for n in g["names"]}
    assert set(by_name) == {n for n, _ in clf.named_parameters()}
    expected = {  # name: (lr scale, weight decay), util/lr_decay.param_groups_lrd
        "pos_embed": (ld ** (depth + 1), 0.0), "cls_token": (ld ** (depth + 1), 0.0),
        "patch_embed.proj.weight": (ld ** (depth + 1), 0.05),
        "patch_embed.proj.bias": (ld ** (depth + 1), 0.0),
        "blocks.0.mlp.fc1.weight": (ld ** 2, 0.05), "blocks.0.mlp.fc1.bias": (ld ** 2, 0.0),
        "blocks.1.attn.qkv.weight": (ld, 0.05), "blocks.1.norm1.weight": (ld, 0.0),
        "fc_norm.weight": (1.0, 0.0), "head.weight": (1.0, 0.05), "head.bias": (1.0, 0.0),
    }
    for name, (scale, wd) in expected.items():
        assert (by_name[name]["lr_scale"], by_name[name]["weight_decay"]) == (scale, wd), name


def test_pos_embed_receives_gradients(encoder):
    clf = MAEClassifier(encoder, 4)
    clf(torch.randn(2, 3, 32, 32)).sum().backward()
    assert clf.pos_embed.grad is not None and clf.pos_embed.grad.abs().sum() > 0


def test_other_resolution_interpolates_the_stored_table_bicubically(encoder):
    with torch.no_grad():  # a trained-looking table: interpolation must follow it, not sin-cos
        encoder.pos_embed.add_(torch.randn_like(encoder.pos_embed))
    clf = MAEClassifier(encoder, 4, img_size=48)  # 4x4 -> 6x6 patches
    table = clf.pos_embed.detach()
    assert table.shape == (1, 37, 32)
    torch.testing.assert_close(table[:, :1], encoder.pos_embed[:, :1])  # cls row kept
    stored = encoder.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(stored, size=(6, 6), mode="bicubic", align_corners=False)
    torch.testing.assert_close(table[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 36, 32))
    assert (table[0, 1:] - sincos_2d(32, 6, 6)[1:]).abs().max() > 0.5  # not a fresh sin-cos table
    assert clf(torch.randn(1, 3, 48, 48)).shape == (1, 4)


def test_head_init_and_drop_path(encoder):
    clf = MAEClassifier(encoder, 4, drop_path=0.2)
    assert 0 < clf.head.weight.std() < 1e-4  # trunc-normal std 2e-5
    assert torch.count_nonzero(clf.head.bias) == 0
    assert clf.blocks[0].drop_path1.__class__.__name__ == "Identity"  # linspace(0, 0.2, depth)
    assert clf.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)


def test_partial_finetune_trains_only_the_last_blocks(encoder):
    clf = MAEClassifier(encoder, 4, pool="cls")
    freeze_for_partial(clf, 1)
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert "blocks.1.attn.qkv.weight" in trainable and "norm.weight" in trainable
    assert "blocks.0.attn.qkv.weight" not in trainable
    assert "patch_embed.proj.weight" not in trainable and "pos_embed" not in trainable
    assert {"head.weight", "head.bias"} <= trainable
    clf0 = MAEClassifier(encoder, 4)
    freeze_for_partial(clf0, 0)
    assert {n for n, p in clf0.named_parameters() if p.requires_grad} == {
        "head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    with pytest.raises(InvalidParameterError, match=r"\[0, 2\]"):
        freeze_for_partial(clf0, 3)


# ---------------------------------------------------------------- the recipe (FINETUNE.md)

@pytest.mark.parametrize("depth,expected", [
    (12, (100, 5e-4, 0.65, 0.1)), (24, (50, 1e-3, 0.75, 0.2)), (32, (50, 1e-3, 0.75, 0.3)),
])
def test_size_recipe_defaults(depth, expected):
    from mae_core.presets import get_preset

    model = get_preset("mae_vit_base_patch16", depth=depth)
    cfg = FinetuneConfig().resolved(model)
    assert (cfg.epochs, cfg.blr, cfg.layer_decay, cfg.drop_path) == expected
    assert (cfg.weight_decay, cfg.mixup, cfg.cutmix, cfg.smoothing, cfg.reprob) == (0.05, 0.8, 1.0, 0.1, 0.25)
    assert FinetuneConfig(epochs=3, drop_path=0.0).resolved(model).drop_path == 0.0  # explicit wins


def test_mixup_cutmix_and_smoothing_are_timms():
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    mix, loss = make_criterion(FinetuneConfig(), 10)
    assert isinstance(mix, Mixup) and isinstance(loss, SoftTargetCrossEntropy)
    assert (mix.mixup_alpha, mix.cutmix_alpha, mix.label_smoothing, mix.switch_prob) == (0.8, 1.0, 0.1, 0.5)
    mix, loss = make_criterion(FinetuneConfig(mixup=0, cutmix=0), 10)
    assert mix is None and isinstance(loss, LabelSmoothingCrossEntropy) and loss.smoothing == 0.1
    mix, loss = make_criterion(FinetuneConfig(mixup=0, cutmix=0, smoothing=0), 10)
    assert mix is None and isinstance(loss, torch.nn.CrossEntropyLoss)
    with pytest.raises(InvalidParameterError, match="even"):
        make_criterion(FinetuneConfig(batch_size=15), 10)


# ---------------------------------------------------------------- accuracy, probing, CLI

def test_top5_only_with_more_than_five_classes():
    labels = torch.tensor([0, 1])
    assert set(topk_accuracy(torch.randn(2, 4), labels)) == {"top1"}
    assert set(topk_accuracy(torch.randn(2, 5), labels)) == {"top1"}
    six = torch.tensor([[0.0, 5, 4, 3, 2, 1],  # label 0 ranked last: miss, miss
                        [0, 9, 1, 2, 3, 4],  # label 1 ranked first: hit, hit
                        [5, 4, 3, 0, 1, 2]])  # label 2 ranked third: miss, hit
    acc = topk_accuracy(six, torch.tensor([0, 1, 2]))
    assert acc == pytest.approx({"top1": 100 / 3, "top5": 200 / 3})


def test_linear_probe_beats_chance_by_a_wide_margin(labelled, encoder, tmp_path):
    train, val = labelled
    result = linear_probe(LinprobeConfig(train_dir=str(train), val_dir=str(val), epochs=30,
                                         batch_size=16, warmup_epochs=3, device="cpu", optimizer="sgd", lr=0.05,
                                         output_dir=str(tmp_path)), model=encoder)
    assert result["top1"] >= 75.0  # chance is 25%
    saved = json.loads((tmp_path / "linprobe.json").read_text())
    assert saved["top1"] == result["top1"] and saved["classes"] == [f"class_{i}" for i in range(4)]
    assert "top5" not in saved  # 4 classes


def test_linear_probe_paper_mode_trains_on_augmented_crops(labelled, encoder, monkeypatch):
    from mae_core.evaluation import linprobe as lp

    seen = []
    real = lp.linprobe_train_transform

    def spy(size):
        transform = real(size)
        seen.append(transform)
        return transform

    monkeypatch.setattr(lp, "linprobe_train_transform", spy)
    train, val = labelled
    result = linear_probe(LinprobeConfig(train_dir=str(train), val_dir=str(val), mode="paper",
                                         epochs=12, batch_size=16, warmup_epochs=2, device="cpu",
                                         optimizer="sgd", lr=0.05), model=encoder)
    assert len(seen) == 1 and len(result["history"]) == 12
    assert result["top1"] >= 50.0  # chance is 25%
    with pytest.raises(InvalidParameterError, match="fast, paper"):
        linear_probe(LinprobeConfig(train_dir=str(train), val_dir=str(val), mode="slow"), model=encoder)


def test_linprobe_cli_writes_its_result_in_the_current_directory(labelled, encoder, tmp_path,
                                                                 monkeypatch, capsys):
    train, val = labelled
    ckpt = save_model(encoder, tmp_path / "enc.safetensors")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "linprobe", "--checkpoint", str(ckpt), "--train", str(train), "--val",
                 str(val), "--epochs", "2", "--batch-size", "16", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed) == {"top1", "num_train", "num_val"}  # no top-5 with 4 classes
    assert json.loads((tmp_path / "linprobe.json").read_text())["top1"] == printed["top1"]


def test_cli_help_defaults_are_the_configs():
    from mae_cli.eval import BY_SIZE, FINETUNE_DEFAULTS, LINPROBE_DEFAULTS

    lin, ft = LinprobeConfig(), FinetuneConfig()
    assert all(getattr(lin, k) == v for k, v in LINPROBE_DEFAULTS.items())
    assert all(getattr(ft, k) == (None if v == BY_SIZE else v) for k, v in FINETUNE_DEFAULTS.items())


def test_finetune_input_size_must_fit_the_patches(encoder):
    from mae_core.evaluation import finetune

    with pytest.raises(InvalidParameterError, match="multiple of the patch size 8"):
        finetune(FinetuneConfig(input_size=30, device="cpu"), model=encoder)


def test_finetune_cli_learns(labelled, encoder, tmp_path):
    train, val = labelled
    ckpt = save_model(encoder, tmp_path / "enc.safetensors")
    code = main(["eval", "finetune", "--checkpoint", str(ckpt), "--train", str(train), "--val",
                 str(val), "--epochs", "8", "--batch-size", "16", "--lr", "2e-3", "--warmup-epochs",
                 "1", "--mixup", "0", "--cutmix", "0", "--drop-path", "0", "--device", "cpu",
                 "--output-dir", str(tmp_path / "ft")])
    assert code == 0
    result = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert result["best"]["top1"] >= 60.0 and len(result["history"]) == 8
    assert result["size_recipe"] == "base" and result["config"]["layer_decay"] == 0.65
    assert result["config"]["aa"] == "rand-m9-mstd0.5-inc1" and result["config"]["reprob"] == 0.25
