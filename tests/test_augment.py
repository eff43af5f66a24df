"""The built-in ``--augment crop-flip``: torchvision-equal, seeded, replayable and differentiable w.r.t. x."""

import subprocess
import sys

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from sensprune.errors import ValidationError
from sensprune.train.augment import (AUGMENTS, PAD, apply_crop_flip, augment, check_augment, crop_flip_params,
                                     step_seed)


def _reference(x, dy, dx, flip):
    """Per example, torchvision: pad by PAD (fill 0), crop H×W at (dy, dx), flip horizontally where flip."""
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):
        xi = TF.crop(TF.pad(x[i], [PAD] * 4), top=int(dy[i]), left=int(dx[i]), height=h, width=w)
        out.append(TF.horizontal_flip(xi) if flip[i] else xi)
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(16, 3, 8, 7), (9, 1, 5, 5), (4, 2, 3, 12)])
def test_equals_torchvision_pad_crop_flip(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g)
    dy = torch.randint(0, 2 * PAD + 1, (shape[0],), generator=g)
    dx = torch.randint(0, 2 * PAD + 1, (shape[0],), generator=g)
    flip = torch.randint(0, 2, (shape[0],), generator=g) == 1
    dy[0], dx[0], flip[0] = 0, 2 * PAD, True  # the extreme windows
    dy[1], dx[1], flip[1] = 2 * PAD, 0, False
    out = apply_crop_flip(x, dy, dx, flip)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, _reference(x, dy, dx, flip))


def test_seeded_params_replay_and_differ():
    a = crop_flip_params(64, 32, 32, step_seed(0, 5))
    b = crop_flip_params(64, 32, 32, step_seed(0, 5))
    c = crop_flip_params(64, 32, 32, step_seed(0, 6))
    d = crop_flip_params(64, 32, 32, step_seed(1, 5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    assert not all(torch.equal(u, v) for u, v in zip(a, d))
    dy, dx, flip = a
    assert dy.dtype == dx.dtype == torch.int64 and flip.dtype == torch.bool and dy.shape == (64,)
    x = torch.randn(64, 3, 32, 32)
    assert torch.equal(augment("crop-flip", x, step_seed(0, 5)), augment("crop-flip", x, step_seed(0, 5)))
    assert not torch.equal(augment("crop-flip", x, step_seed(0, 5)), augment("crop-flip", x, step_seed(0, 6)))


def test_params_range_and_flip_rate():
    dys, dxs, flips = zip(*(crop_flip_params(100, 8, 8, step_seed(3, s)) for s in range(50)))
    dy, dx, flip = torch.cat(dys), torch.cat(dxs), torch.cat(flips)
    for o in (dy, dx):
        assert int(o.min()) == 0 and int(o.max()) == 2 * PAD
        assert torch.bincount(o, minlength=2 * PAD + 1).min() > 5000 / (2 * PAD + 1) * 0.8
    assert abs(flip.float().mean().item() - 0.5) < 0.03  # 5000 draws: sd 0.007


def test_step_seed_is_fixed_and_in_range():
    seeds = [step_seed(0, s) for s in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert step_seed(-1, 0) == step_seed(2**64 - 1, 0) != step_seed(0, 0)
    # Pinned: SeedSequence's mixing is specified, so this value is the same on every platform.
    assert step_seed(0, 0) == 6779459945813530270 and step_seed(42, 7) == 1618500480871565466
    with pytest.raises(ValidationError):
        step_seed(0, -1)


def test_gradcheck_and_gradient_is_the_hand_scatter():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    dy, dx, flip = torch.tensor([0, 7]), torch.tensor([8, 3]), torch.tensor([True, False])
    assert torch.autograd.gradcheck(lambda t: apply_crop_flip(t, dy, dx, flip), (x,))
    w = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=g)
    (grad,) = torch.autograd.grad((w * apply_crop_flip(x, dy, dx, flip)).sum(), x)
    want = torch.zeros_like(x)
    for i in range(2):
        for r in range(6):
            for k in range(5):
                src_r = int(dy[i]) + r - PAD
                src_k = int(dx[i]) + (5 - 1 - k if flip[i] else k) - PAD
                if 0 <= src_r < 6 and 0 <= src_k < 5:
                    want[i, :, src_r, src_k] += w[i, :, r, k]
    assert torch.equal(grad, want)


def test_channels_last_and_dtype():
    x = torch.randn(5, 3, 9, 10)
    seed = step_seed(7, 0)
    y = augment("crop-flip", x, seed)
    xc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    yc = augment("crop-flip", xc, seed)
    assert torch.equal(yc, y)
    w = torch.randn_like(y)
    xg = x.clone().requires_grad_()
    assert torch.equal(torch.autograd.grad((w * yc).sum(), xc)[0],
                       torch.autograd.grad((w * augment("crop-flip", xg, seed)).sum(), xg)[0])
    xh = x.to(torch.float16)
    assert augment("crop-flip", xh, seed).dtype == torch.float16
    assert torch.equal(augment("crop-flip", xh, seed), y.to(torch.float16))


def test_two_dimensional_images_are_one_channel():
    x = torch.randn(4, 10, 8)
    seed = step_seed(0, 3)
    out = augment("crop-flip", x, seed)
    assert out.shape == x.shape
    assert torch.equal(out, augment("crop-flip", x[:, None], seed)[:, 0])


def test_check_augment():
    for shape in [(64,), (10, 8), (3, 32, 32), (1, 2, 3, 4)]:
        assert check_augment("none", shape) == "none"
    assert check_augment("crop-flip", (3, 32, 32)) == "crop-flip"
    assert check_augment("crop-flip", (10, 8)) == "crop-flip"  # one-channel images, as the models read them
    with pytest.raises(ValidationError) as e:
        check_augment("crop-flip", (64,))
    assert str(e.value) == ("`--augment crop-flip` needs image inputs of shape (C, H, W) or (H, W); "
                            "this dataset's inputs have shape (64,).")
    with pytest.raises(ValidationError, match=r"shape \(1, 2, 3, 4\)\.$"):
        check_augment("crop-flip", (1, 2, 3, 4))
    with pytest.raises(ValidationError) as e:
        check_augment("x", (3, 32, 32))
    assert str(e.value) == "`--augment` must be one of none, crop-flip; got 'x'."
    assert AUGMENTS == ("none", "crop-flip")


def test_none_is_identity():
    x = torch.randn(3, 3, 4, 4)
    assert augment("none", x, 3) is x
    with pytest.raises(ValidationError):
        augment("cutout", x, 3)


def test_import_loads_no_torch():
    code = ("import sys; from sensprune.train.augment import check_augment, step_seed; "
            "check_augment('crop-flip', (3, 4, 4)); step_seed(0, 1); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
