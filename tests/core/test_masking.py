import pytest
import torch

from mae_core import InvalidParameterError
from mae_core.masking import (
    indices_from_mask, list_strategies, make_generator, mask_scores, num_kept, sample_mask,
)

GRID = (14, 14)


@pytest.mark.parametrize("strategy,ratio", [
    ("random", 0.75), ("random", 0.5), ("random", 0.9), ("random", 0.05),
    ("block", 0.5), ("block", 0.75), ("block", 0.4), ("grid", 0.75),
])
def test_exact_count_per_sample(strategy, ratio):
    masks = sample_mask(strategy, 8, GRID, ratio, make_generator(0))
    removed = masks.reshape(8, -1).sum(dim=1)
    assert removed.tolist() == [196 - int(196 * (1 - ratio))] * 8


@pytest.mark.parametrize("strategy", ["random", "block", "grid"])
def test_reproducible_by_seed(strategy):
    a = sample_mask(strategy, 4, GRID, 0.75, make_generator(123))
    b = sample_mask(strategy, 4, GRID, 0.75, make_generator(123))
    assert torch.equal(a, b)
    if strategy != "grid":
        c = sample_mask(strategy, 4, GRID, 0.75, make_generator(124))
        assert not torch.equal(a, c)


def test_grid_keeps_exactly_one_per_2x2_cell():
    mask = sample_mask("grid", 3, GRID, 0.75, make_generator(0))
    visible = 1 - mask
    cells = visible.reshape(3, 7, 2, 7, 2).sum(dim=(2, 4))
    assert torch.all(cells == 1)


def test_grid_other_ratio_is_an_error():
    with pytest.raises(InvalidParameterError, match="0.75"):
        sample_mask("grid", 1, GRID, 0.5, make_generator(0))


def test_block_masks_are_blocky():
    # block masks have far fewer visible/removed boundaries than random masks of the same ratio
    def boundaries(m):
        return int((m[:, 1:, :] != m[:, :-1, :]).sum() + (m[:, :, 1:] != m[:, :, :-1]).sum())

    block = sample_mask("block", 16, GRID, 0.5, make_generator(0))
    rand = sample_mask("random", 16, GRID, 0.5, make_generator(0))
    assert boundaries(block) < 0.6 * boundaries(rand)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_bad_ratio(bad):
    with pytest.raises(InvalidParameterError):
        sample_mask("random", 1, GRID, bad, make_generator(0))


def test_unknown_strategy_lists_choices():
    with pytest.raises(InvalidParameterError, match="block, grid, random"):
        mask_scores("checkerboard", 1, GRID, 0.75)
    assert list_strategies() == ["block", "grid", "random"]


def test_explicit_mask_indices():
    mask = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])
    m = indices_from_mask(mask)
    assert torch.equal(m.mask, mask.float())
    assert m.ids_keep.tolist() == [[0, 3], [1, 2]]
    with pytest.raises(InvalidParameterError, match="same number"):
        indices_from_mask(torch.tensor([[0, 1, 1, 0], [1, 1, 1, 0]]))


def test_num_kept_matches_official_formula():
    assert num_kept(196, 0.75) == 49
    assert num_kept(196, 0.9) == int(196 * (1 - 0.9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device)")
@pytest.mark.parametrize("strategy", ["random", "block", "grid"])
def test_same_seed_same_mask_on_gpu(strategy, tiny_model):
    scores = mask_scores(strategy, 2, (4, 4), 0.75, make_generator(7))
    cpu = tiny_model.mask_indices(2, (4, 4), torch.device("cpu"), 0.75, scores).mask
    model = tiny_model.cuda()
    gpu = model.mask_indices(2, (4, 4), torch.device("cuda"), 0.75, scores).mask
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize("strategy,ratio", [("random", 0.75), ("random", 0.4), ("block", 0.5),
                                            ("grid", 0.75)])
def test_reconstruction_masks_equal_the_sampled_masks(strategy, ratio, tiny_model):
    # the reconstructor sends scores as the model's noise; the masks are those of sample_mask
    from PIL import Image

    from mae_core import Reconstructor

    r = Reconstructor(tiny_model, device="cpu")
    photo = Image.new("RGB", (64, 64), (120, 80, 40))
    for seed in (0, 5, 99):
        rec = r.reconstruct(photo, mask_ratio=ratio, strategy=strategy, seed=seed)
        want = sample_mask(strategy, 1, (4, 4), ratio, make_generator(seed))[0]
        assert torch.equal(torch.from_numpy(rec.mask).float(), want)
        assert rec.requested_mask_ratio == ratio
