"""random_crops / centre_crop: crops come from the images, flips happen, seeds repeat."""
import pytest
import torch

from interp_gan.data import centre_crop, random_crops


def _planted(n=3, size=12):
    # pixel value encodes (image, channel, row, col), so every crop can be located exactly
    i, c, y, x = torch.meshgrid(torch.arange(n), torch.arange(3), torch.arange(size),
                                torch.arange(size), indexing="ij")
    return (i * 10000 + c * 1000 + y * 100 + x).float()


def test_random_crops_are_real_crops_with_flips():
    torch.manual_seed(0)
    imgs = _planted()
    out = random_crops(imgs, 5, n=64, generator=torch.Generator().manual_seed(1))
    assert out.shape == (64, 3, 5, 5)
    n_flipped = 0
    for crop in out:
        i, y = int(crop[0, 0, 0] // 10000), int(crop[0, 0, 0] % 1000 // 100)
        left, right = crop[0, 0, 0] % 100, crop[0, 0, -1] % 100
        flipped = bool(left > right)
        x = int(min(left, right))
        ref = imgs[i, :, y:y + 5, x:x + 5]
        torch.testing.assert_close(crop, ref.flip(-1) if flipped else ref)
        n_flipped += flipped
    assert 10 < n_flipped < 54                      # about half are mirrored
    assert len({int(c[0, 0, 0] // 10000) for c in out}) == 3    # all images get sampled


def test_random_crops_repeat_under_a_seed():
    imgs = _planted()
    a = random_crops(imgs, 6, 8, torch.Generator().manual_seed(3))
    b = random_crops(imgs, 6, 8, torch.Generator().manual_seed(3))
    c = random_crops(imgs, 6, 8, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_centre_crop_and_errors():
    imgs = _planted(size=10)
    out = centre_crop(imgs, 4)
    assert torch.equal(out, imgs[:, :, 3:7, 3:7])
    with pytest.raises(ValueError, match="crop size 11"):
        centre_crop(imgs, 11)
    with pytest.raises(ValueError, match=r"expected images \[N, 3, H, W\]"):
        random_crops(imgs[:, 0], 4, 2, torch.Generator())
