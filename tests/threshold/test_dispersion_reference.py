"""The compiled dispersion kernels against a plain numpy reference (DIALS's formulas, exact box sums).

Integer-valued images only: their window sums are exact integers, so any correct summation gives
the same float64 sums and the strong pixels must be identical, pixel for pixel. The reference
evaluates the comparisons with the operation order of docs/dials-behaviour.md#window.
"""

import numpy as np
import pytest

from findspots.threshold.dispersion import dispersion, dispersion_extended, min_count

BIG = 1 << 24


def box_sums(values: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """Sum of ``values`` (int64) over the box [j-ky, j+ky] x [i-kx, i+kx] clipped to the image."""
    h, w = values.shape
    table = np.zeros((h + 1, w + 1), np.int64)
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    r0, r1 = np.clip(rows - ky, 0, h), np.clip(rows + ky + 1, 0, h)
    c0, c1 = np.clip(cols - kx, 0, w), np.clip(cols + kx + 1, 0, w)
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def window_stats(image, usable, ky, kx):
    """Count, sum and sum of squares of the usable pixels in each pixel's window, as float64."""
    v = np.where(usable, image, 0).astype(np.int64)
    return tuple(box_sums(a, ky, kx).astype(np.float64) for a in (usable.astype(np.int64), v, v * v))


def dispersion_flag(image, mask, kernel, nsig_b, count, gain):
    """DIALS's dispersion test, and the window count and sum it used."""
    m, x, y = window_stats(image, mask & (image < BIG), *kernel)
    with np.errstate(invalid="ignore"):
        root = np.sqrt(2 * (m - 1))
    if gain > 0:
        a, c = m * y - x * x, gain * x * ((m - 1) + nsig_b * root)
    else:
        a, c = m * y - x * x - x * (m - 1), x * nsig_b * root
    return mask & (m >= count) & (x >= 0) & (a > c), m, x


def reference_classic(image, mask, kernel, nsig_b, nsig_s, count, threshold, gain):
    flag, m, x = dispersion_flag(image, mask, kernel, nsig_b, count, gain)
    v = image.astype(np.float64)
    with np.errstate(invalid="ignore"):
        d = nsig_s * np.sqrt((gain * x * m) if gain > 0 else (x * m))
    return flag & (v > threshold) & (m * v - x > d)


def reference_extended(image, mask, kernel, nsig_b, nsig_s, count, threshold, gain):
    flag, _, _ = dispersion_flag(image, mask, kernel, nsig_b, count, gain)
    flag |= ~mask
    r = min(kernel) - 1
    # core: every pixel of the (2r+1)-square around it (clipped) flagged
    core = mask & flag
    if r >= 0:
        core &= box_sums((~flag).astype(np.int64), r, r) == 0
    m, x, _ = window_stats(image, mask & ~core & (image < BIG), kernel[0] + 2, kernel[1] + 2)
    v = image.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m >= 2, x / m, 0.0)
        bound = mean + nsig_s * np.sqrt(gain * mean if gain > 0 else mean)
    return core & (x >= 0) & (v > threshold) & (v >= bound)


def random_case(seed, shape):
    """Poisson background, bright blobs, hot pixels, masked pixels, values at 2**24 and negatives."""
    rng = np.random.default_rng(seed)
    image = rng.poisson(rng.uniform(0.3, 30), size=shape).astype(np.int64)
    for _ in range(max(1, image.size // 150)):
        j, i = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        image[max(j - 1, 0) : j + 2, max(i - 1, 0) : i + 2] += rng.integers(20, 400)
    image[rng.random(shape) < 0.005] = BIG + 7
    image[rng.random(shape) < 0.005] = -rng.integers(1, 3)
    mask = rng.random(shape) > 0.08
    mask[:, rng.integers(0, shape[1])] = False  # a module gap
    return image, mask


CASES = [
    # shape, kernel (ky, kx), min_local, sigma_background, sigma_strong, global threshold, gain
    ((40, 57), (3, 3), 2, 6.0, 3.0, 0.0, None),
    ((23, 31), (1, 2), 0, 2.0, 2.0, 0.0, None),
    ((37, 29), (2, 5), 7, 3.0, 1.5, 5.0, 1.3),
    ((1, 17), (0, 3), 2, 1.0, 1.0, 0.0, None),
    ((61, 2), (4, 0), 3, 1.0, 1.0, 0.0, 0.8),
    ((5, 6), (3, 3), 2, 2.0, 2.0, 0.0, None),  # kernel larger than the image
    ((31, 44), (0, 0), 0, 1.0, 0.5, 0.0, None),
    ((50, 33), (4, 2), 20, 4.0, 2.5, 2.0, None),
    ((45, 38), (2, 1), 0, 2.0, 2.0, 0.0, 1.1),  # whole kernel: windows at masked pixels fail
]


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_kernels_equal_the_numpy_reference(case, dtype):
    shape, kernel, min_local, nsig_b, nsig_s, threshold, gain = CASES[case]
    image, mask = random_case(case, shape)
    count = min_count(kernel, min_local)
    g = gain or 0.0
    args = (kernel, nsig_b, nsig_s, min_local, threshold, gain)
    expect = reference_classic(image, mask, kernel, nsig_b, nsig_s, count, threshold, g)
    np.testing.assert_array_equal(dispersion(image.astype(dtype), mask, *args), expect)
    expect = reference_extended(image, mask, kernel, nsig_b, nsig_s, count, threshold, g)
    np.testing.assert_array_equal(dispersion_extended(image.astype(dtype), mask, *args), expect)


def test_the_reference_cases_find_strong_pixels():
    """The comparisons above are not vacuous: strong pixels per case (classic, extended); a 1x1 kernel
    (count 1) never has a variance above its mean."""
    found = []
    for case, (shape, kernel, min_local, nsig_b, nsig_s, threshold, gain) in enumerate(CASES):
        image, mask = random_case(case, shape)
        args = (kernel, nsig_b, nsig_s, min_local, threshold, gain)
        found.append(
            (int(dispersion(image, mask, *args).sum()), int(dispersion_extended(image, mask, *args).sum()))
        )
    assert found == [(94, 109), (4, 4), (58, 62), (3, 3), (5, 6), (7, 21), (0, 0), (91, 90), (32, 33)]
