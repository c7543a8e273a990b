"""Resolution estimates of one spot list, as DIALS 3.12's per-image analysis computes them.

Conventions shared by every function here:

* ``d_star_sq`` is 1/d² (Å⁻²) of each spot, |s1 − s0|² of its centroid; d = 1/sqrt(d_star_sq).
* Only spots with ``variance > 0`` take part in an estimate. (DIALS 3.12 drops them in the DISTL methods
  and fails in ``estimated_d_min`` when there are any; strong spots always have a positive variance.)
* Sums are accumulated in row order and sorts are stable, as DIALS's flex arrays do, so that ties and
  threshold comparisons come out the same.
* An estimate that cannot be made returns −1 (``estimated_d_min``: the integer −1, as DIALS returns it).

The DISTL methods are those of Zhang, Sauter, van den Bedem, Snell & Deacon, J. Appl. Cryst. (2006) 39,
112–119, section 2.4.4, in DIALS's variant.
"""

from __future__ import annotations

import math

import numpy as np

WILSON_P_CUTOFF = 1e-2  # a spot is a Wilson outlier if its normalised amplitude is this improbable
PERCENTILE = 0.1  # estimated_d_min: the lower and upper 10 % of ln(I/sigma) in each shell
DISTL_SKIP = 3  # method 1: the first points are never the end of the spot "bump"
DISTL_MAX_POINTS = 40  # method 1: at most this many subsampled points
DISTL_SHELL_FRACTION = 0.15  # method 2: a shell is empty below this fraction of the first two's mean


def ordered_sum(values: np.ndarray) -> float:
    """Sum accumulated in row order (0.0 when empty), the way flex.sum adds."""
    return float(np.cumsum(values, dtype=np.float64)[-1]) if len(values) else 0.0


def linear_fit(x: np.ndarray, y: np.ndarray, epsilon: float = 1e-15) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line, with scitbx's rules for degenerate input.

    No points, or all x equal: (0, 0). All y equal: (0, y). x spread negligible against the y spread
    (``dx < dy * epsilon``): (0, 0).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not len(x):
        return 0.0, 0.0
    min_x, max_x, min_y, max_y = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    if min_x == max_x:
        return 0.0, 0.0
    if min_y == max_y:
        return 0.0, min_y
    n = float(len(x))
    sum_x, sum_y = ordered_sum(x), ordered_sum(y)
    sum_x2, sum_xy = ordered_sum(x * x), ordered_sum(x * y)
    dx = max(abs(min_x - sum_x / n), abs(max_x - sum_x / n))
    dy = max(abs(min_y - sum_y / n), abs(max_y - sum_y / n))
    if dx == 0:
        return 0.0, 0.0
    if dy == 0:
        return 0.0, sum_y / n
    if dx < dy * epsilon:
        return 0.0, 0.0
    det = n * sum_x2 - sum_x * sum_x
    if det == 0:
        return 0.0, 0.0
    return (n * sum_xy - sum_x * sum_y) / det, (sum_x2 * sum_y - sum_x * sum_xy) / det


def wilson_outliers(intensity: np.ndarray, ice: np.ndarray, p_cutoff: float = WILSON_P_CUTOFF) -> np.ndarray:
    """Spots whose normalised amplitude sqrt(I / <I>) is at least sqrt(−ln p_cutoff), iterated.

    <I> is the mean intensity of the spots off the ice rings; the outliers found are removed and the test
    repeated on the rest until no new outlier appears.
    """
    cutoff = math.sqrt(-math.log(p_cutoff))
    clean = intensity[~ice]
    mean = ordered_sum(clean) / len(clean)
    with np.errstate(invalid="ignore"):
        outliers = np.sqrt(intensity) / math.sqrt(mean) >= cutoff
    if outliers.any():
        inliers = ~outliers
        outliers[inliers] = wilson_outliers(intensity[inliers], ice[inliers], p_cutoff)
    return outliers


def equal_population_shells(
    d_star_sq: np.ndarray, target_per_shell: int = 20, max_shells: int = 20, min_shells: int = 5
) -> list[tuple[float, float]]:
    """(d_min, d_max) shells of about equal spot counts, from low to high resolution.

    ``len // target_per_shell`` shells, clamped to [min_shells, max_shells]; shell i ends (d_min) at the
    spot of rank round((i + 1) * n / shells) − 1 in decreasing d. A spot belongs to a shell when
    d_min <= d < d_max, so the lowest-resolution spot is in none.
    """
    n_shells = max(min(len(d_star_sq) // target_per_shell, max_shells), min_shells)
    per_shell = len(d_star_sq) / n_shells
    d_sorted = 1.0 / np.sqrt(np.sort(d_star_sq, kind="stable"))
    shells = []
    d_max = float(d_sorted[0])
    for i in range(n_shells):
        d_min = float(d_sorted[math.floor((i + 1) * per_shell + 0.5) - 1])
        shells.append((d_min, d_max))
        d_max = d_min
    return shells


def below_line(x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Points strictly below the line y = slope * x + intercept (a signed zero counts as below)."""
    # The direction is taken between the line's points at x = 0 and x = 1, as DIALS does.
    # The dot product starts from +0, so a -0 product only stays negative with a negative second term.
    rise = (slope * 1 + intercept) - intercept
    side = (0.0 + x * -rise) + (y - intercept)
    return np.signbit(side)


def estimated_d_min(d_star_sq: np.ndarray, intensity: np.ndarray, variance: np.ndarray, ice: np.ndarray):
    """The resolution where ln(I/σ) reaches the background, from its upper envelope against d*².

    In each equal-population shell (of all spots, ice included) Wilson outliers are flagged; of the
    remaining spots off the ice rings, the ln(I/σ) at the 10th and 90th percentile (sorted rank
    floor(0.1 n) and floor(0.9 n)) are taken. Two lines are fitted: the upper one through the 90th
    percentile values and the lower through the 10th, each paired with the d*² of the *other*
    percentile's spot (DIALS's pairing). If their slopes are equal the estimate is −1; otherwise it is
    the highest d*² among the spots below the upper line that are neither outliers nor on ice, as d,
    or −1 when there is none.
    """
    keep = variance > 0
    d_star_sq, intensity, variance, ice = d_star_sq[keep], intensity[keep], variance[keep], ice[keep]
    d = 1.0 / np.sqrt(d_star_sq)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_i_sigi = np.log(intensity / np.sqrt(variance))
    outliers = np.zeros(len(d), bool)
    upper_x, upper_y, lower_x, lower_y = [], [], [], []
    for d_lo, d_hi in equal_population_shells(d_star_sq):
        in_shell = (d < d_hi) & (d >= d_lo)
        if not (in_shell & ~ice).any():
            continue
        outliers[in_shell] = wilson_outliers(intensity[in_shell], ice[in_shell])
        rows = np.flatnonzero(in_shell & ~outliers & ~ice)
        values = log_i_sigi[rows]
        order = np.argsort(values, kind="stable")
        low = rows[order[math.floor(PERCENTILE * len(order))]]
        high = rows[order[math.floor((1 - PERCENTILE) * len(order))]]
        lower_y.append(log_i_sigi[low])
        upper_y.append(log_i_sigi[high])
        upper_x.append(d_star_sq[low])
        lower_x.append(d_star_sq[high])
    m_upper, c_upper = linear_fit(np.array(upper_x), np.array(upper_y))
    m_lower, _ = linear_fit(np.array(lower_x), np.array(lower_y))
    if m_upper == m_lower:
        return -1
    inside = below_line(d_star_sq, log_i_sigi, m_upper, c_upper) & ~outliers & ~ice
    if not inside.any():
        return -1
    return float(1.0 / math.sqrt(float(d_star_sq[inside].max())))


def noisiness_of_slopes(slopes: np.ndarray) -> float:
    """DISTL method 1 noisiness: the fraction of pairs i < j with slopes[i] >= slopes[j].

    0 for strictly increasing slopes (a clean, accelerating d*³ curve), 1 for non-increasing ones.
    """
    s = np.asarray(slopes, dtype=np.float64)
    pairs = np.triu(s[:, None] >= s[None, :], k=1)
    return int(pairs.sum()) / ((len(s)) * (len(s) - 1) / 2)


def noisiness_of_counts(counts: np.ndarray) -> float:
    """DISTL method 2 noisiness: the fraction of shell pairs i < j with counts[i] <= counts[j].

    0 for strictly decreasing counts (spots thinning out with resolution), 1 for non-decreasing ones.
    """
    c = np.asarray(counts, dtype=np.int64)
    pairs = np.triu(c[:, None] <= c[None, :], k=1)
    m = len(c)
    return int(pairs.sum()) / (0.5 * m * (m - 1))


def distl_method_1(d_star_sq: np.ndarray, variance: np.ndarray) -> tuple[float, float]:
    """(d_min, noisiness) by DISTL method 1: the knee of d*³ against spot rank.

    The spots, in decreasing d, are subsampled every ``step`` (the smallest step >= 2 that leaves at
    most 40 points). With slopes from the first point, the end point p_m is the steepest after skipping
    the first three; the gaps are the distances of points 1..p_m−1 from the chord of points 0 and p_m
    (gap 0 for point 0). From the largest gap g_k, the last later point whose gap exceeds
    g_k − σ/2 (σ the sample standard deviation of the gaps) gives d_min. (−1, −1) when fewer than five
    points remain (DIALS 3.12 fails there).
    """
    keep = variance > 0
    d_star_sq = d_star_sq[keep]
    n = len(d_star_sq)
    d = 1.0 / np.sqrt(d_star_sq)
    d_star_cubed = np.power(np.sqrt(d_star_sq), 3.0)
    step = 2
    while n / step > DISTL_MAX_POINTS:
        step += 1
    picked = np.argsort(-d, kind="stable")[: (n // step) * step : step]
    ds3, d_sub = d_star_cubed[picked], d[picked]
    if len(ds3) <= DISTL_SKIP + 1:
        return -1.0, -1.0
    slopes = (ds3[1:] - ds3[0]) / np.arange(1, len(ds3), dtype=np.float64)
    p_m = int(np.argmax(slopes[DISTL_SKIP:])) + 1 + DISTL_SKIP
    vx, vy = ds3[p_m] - ds3[0], -(p_m - 0.0)
    length = math.sqrt(vx * vx + vy * vy)
    vx, vy = vx / length, vy / length
    i = np.arange(1, p_m, dtype=np.float64)
    gaps = np.concatenate([[0.0], np.abs(vx * (0.0 - i) + vy * (ds3[0] - ds3[1:p_m]))])
    mean = ordered_sum(gaps) / len(gaps)
    sigma = math.sqrt(ordered_sum((gaps - mean) ** 2) / (len(gaps) - 1))
    p_k = int(np.argmax(gaps))
    later = np.flatnonzero(gaps[p_k + 1 :] > gaps[p_k] - 0.5 * sigma)
    p_g = p_k + 1 + int(later[-1]) if len(later) else p_k
    return float(d_sub[p_g]), noisiness_of_slopes(slopes)


def d_star_cubed_shells(
    d: np.ndarray, target_per_shell: int = 25, max_shells: int = 40, min_shells: int = 20
):
    """(d_min, d_max) shells of equal width in d*³ over the distinct d values, low to high resolution.

    The trial width holds the lowest-resolution max(25, 5 %) of the distinct spots (at most 25 %); the
    number of shells that gives is clamped to [min_shells, max_shells] and the range split evenly.
    Edges are converted back to d with a cube root.
    """
    distinct = np.unique(d)[::-1]  # at least two values
    ds3 = np.power(1.0 / distinct, 3.0)
    m = len(distinct)
    low_res_count = int(math.ceil(min(max(target_per_shell, 0.05 * m), 0.25 * m)))
    trial = float(ds3[low_res_count] - ds3[0])  # > 0: the values are distinct
    span = float(ds3[-1] - ds3[0])
    n_shells = max(min(int(math.ceil(span / trial)), max_shells), min_shells)
    width = span / n_shells
    shells = []
    hi = float(ds3[0])
    for i in range(n_shells):
        lo = float(ds3[0]) + (i + 1) * width
        shells.append((1 / lo ** (1 / 3), 1 / hi ** (1 / 3)))
        hi = lo
    return shells


def distl_method_2_cut(counts: np.ndarray) -> int:
    """Index of the last shell kept: the first i where shells i and i+1 both hold fewer than 15 % of
    the mean count of shells 0 and 1 (the second-to-last shell when that never happens)."""
    threshold = DISTL_SHELL_FRACTION * ((int(counts[0]) + int(counts[1])) / 2)
    for i in range(len(counts) - 1):
        if counts[i] < threshold and counts[i + 1] < threshold:
            return i
    return len(counts) - 2


def distl_method_2(d_star_sq: np.ndarray, variance: np.ndarray) -> tuple[float, float]:
    """(d_min, noisiness) by DISTL method 2: where the spot count per d*³ shell falls away.

    Spots are counted in :func:`d_star_cubed_shells` (d_min <= d < d_max); d_min is the inner edge of
    the shell :func:`distl_method_2_cut` picks. (−1, −1) with fewer than two distinct d (DIALS 3.12 fails).
    """
    d = 1.0 / np.sqrt(d_star_sq[variance > 0])
    if len(np.unique(d)) < 2:
        return -1.0, -1.0
    shells = d_star_cubed_shells(d)
    counts = np.array([int(((d < hi) & (d >= lo)).sum()) for lo, hi in shells])
    return float(shells[distl_method_2_cut(counts)][0]), noisiness_of_counts(counts)
