"""ISBI 2012 challenge metrics: V_rand, V_info, Rand error and pixel error.

Definitions follow the challenge paper (Arganda-Carreras et al., "Crowdsourcing
the creation of image segmentation algorithms for connectomics", Front.
Neuroanat. 9:142, 2015) and its reference implementation, the Fiji
Trainable_Segmentation ``trainableSegmentation.metrics`` package (RandError,
VariationOfInformation, PixelError) that the challenge server ran. All
metrics are computed per 2D slice; the proposal is a map where high values
mean *cell interior*, the same polarity as the labels (255 = cell).

For each threshold ``th`` in :data:`ISBI_THRESHOLDS` (0.0, 0.1, ..., 1.0):

* ground truth: 4-connected components of the label's cell pixels; the
  membrane (0) pixels are left out of every count ("foreground-restricted").
  ``n`` = number of ground-truth cell pixels of the slice.
* proposal: the cell pixels ``prob > th``.

With ``c_ij`` the number of ground-truth pixels in ground-truth region ``i``
and proposal region ``j``, ``a_i = sum_j c_ij`` and ``b_j = sum_i c_ij``,
and each proposal *boundary* pixel that falls in the ground-truth foreground
counted as its own singleton region (``c = 1``):

* **V_rand** (2013 leaderboard, "after thinning"): the binarised proposal is
  first split into regions by a 4-connected watershed that floods the
  boundary pixels from the 4-connected cell components and leaves
  one-pixel watershed lines (:func:`thin_boundaries`). Per slice
  ``V_rand = sum c_ij^2 / (0.5 sum a_i^2 + 0.5 sum b_j^2)``, the F-score of
  Rand split and merge scores; averaged over slices, maximised over ``th``.
* **V_info**: the same segmentations; ``V_info = 2 I(S;T) / (H(S) + H(T))``,
  the F-score of the information-theoretic split and merge scores; averaged
  over slices, maximised over ``th``.
* **Rand error (2012)**: without thinning, the proposal regions are the
  4-connected components of ``prob > th``; ``tp = sum c_ij^2``,
  ``fp = sum b_j^2 - tp``, ``fn = sum a_i^2 - tp`` (pairs of pixels, self
  pairs included) summed over slices; error = ``1 - max_th F``.
* **Pixel error (2012)**: ``1 - max_th F1`` of the cell pixels (``tp``,
  ``fp``, ``fn`` summed over slices), not the plain mismatch rate.

The F-score follows Fiji's ``ClassificationStatistics``: precision is 1 when
there are no false positives, recall is 1 when there are no false negatives,
and F is 0 when precision + recall is 0. Maximisation keeps the first
(lowest) threshold among ties, as Fiji's ``if (f > best)`` loop does.

Where this module deliberately differs from Fiji, it says so:

* thresholds are exactly ``k / 10``; Fiji accumulates ``th += 0.1`` in double
  precision (0.30000000000000004, ..., 0.7999..., 0.8999..., 0.9999...),
  which only changes pixels lying exactly on a threshold (e.g. a proposal
  of exactly 1.0 is cell at Fiji's last threshold, not at our 1.0; the
  maximum over thresholds is not affected in practice). A ``uint8``
  proposal value ``v`` is the probability ``v / 255`` and is compared
  exactly (``v > 255 * th``).
* thinning uses OpenCV's marker watershed (Meyer's flooding, 4-connected, on
  a flat image, i.e. breadth-first flooding from the cell components) instead
  of Fiji's Vincent-Soille implementation, visiting pixels in Fiji's
  column-major order. Both give one-pixel lines between regions, but
  Vincent-Soille also spreads "watershed" from line pixels to pixels that no
  region has reached yet, so its lines are now and then thicker or a pixel
  apart. Measured on slices 25-29 with a blurred, noised proposal (against a
  Python re-statement of Fiji's flooding, ``tests/test_isbi.py``): V_rand
  and V_info differ by 1e-5 to 3e-5 at the best threshold and by up to
  3e-4 at thresholds where the proposal breaks into many small pieces.
* a slice whose ground truth has no cell pixel is undefined (``NaN``) and left
  out of the slice average (Fiji divides by zero); V_info of a slice where
  both segmentations are a single region is 1 (Fiji returns 0 when an entropy
  is 0; with a single ground-truth region the only way to match it is to
  be one region too, so 1 is the honest score).

Pure numpy/OpenCV: no Keras.
"""
import dataclasses
import math

import cv2
import numpy as np

from keras_unets.metrics.pixel import _as_stack, _check_labels, _check_same_shape

__all__ = [
    "ISBI_THRESHOLDS",
    "FINE_THRESHOLDS",
    "ISBIScores",
    "RandCounts",
    "binarize",
    "connected_components",
    "thin_boundaries",
    "rand_counts",
    "vrand_score",
    "vinfo_score",
    "f_score",
    "isbi_scores",
    "fine_scores",
    "v_rand",
    "v_info",
    "rand_error",
    "pixel_error",
]

#: The thresholds the challenge sweeps: 0.0, 0.1, ..., 1.0 (probability scale).
ISBI_THRESHOLDS = tuple(k / 10 for k in range(11))

#: A finer grid, 0.00, 0.01, ..., 1.00, for comparing networks whose best
#: threshold falls between the challenge's: on the 0.1 grid the score depends
#: on where the grid happens to fall on each network's calibration (the quick
#: UNet++ runs' V_rand still rises at 0.9, the last useful challenge
#: threshold). It holds every challenge threshold exactly (``k / 10`` and
#: ``10 k / 100`` are both the correctly rounded quotient of the same number),
#: so a score maximised over it is never below the challenge's. About 9 s for
#: five 512x512 slices on one CPU core.
FINE_THRESHOLDS = tuple(k / 100 for k in range(101))


@dataclasses.dataclass(frozen=True)
class RandCounts:
    """Foreground-restricted Rand pair counts of one slice (self pairs included).

    ``sum_ab = sum_ij c_ij^2`` (with proposal boundary pixels as singletons),
    ``sum_a = sum_i a_i^2`` (ground truth), ``sum_b = sum_j b_j^2``
    (proposal), ``n`` = ground-truth cell pixels. In Fiji's terms
    ``tp = sum_ab``, ``fp = sum_b - sum_ab``, ``fn = sum_a - sum_ab``.
    """

    sum_ab: int
    sum_a: int
    sum_b: int
    n: int

    @property
    def tp(self):
        return self.sum_ab

    @property
    def fp(self):
        return self.sum_b - self.sum_ab

    @property
    def fn(self):
        return self.sum_a - self.sum_ab


@dataclasses.dataclass(frozen=True)
class ISBIScores:
    """Result of :func:`isbi_scores`.

    Scores are the best over :attr:`thresholds`; ``*_threshold`` is where the
    best was reached (lowest among ties). The ``*_curve`` tuples hold the
    score at every threshold: slice-averaged V_rand / V_info, pooled Rand
    F-score and pixel F1.
    """

    v_rand: float
    v_rand_threshold: float
    v_info: float
    v_info_threshold: float
    rand_error: float
    rand_error_threshold: float
    pixel_error: float
    pixel_error_threshold: float
    thresholds: tuple
    v_rand_curve: tuple
    v_info_curve: tuple
    rand_fscore_curve: tuple
    pixel_fscore_curve: tuple

    def as_dict(self):
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------
def _check_proposal(proposal, name="proposal"):
    """A uint8 0-255 or float [0, 1] map as an (N, H, W) array."""
    proposal = _as_stack(proposal, name)
    if proposal.dtype == np.uint8:
        return proposal
    if not np.issubdtype(proposal.dtype, np.floating):
        raise ValueError(
            f"`{name}` must be a uint8 map (0-255) or a float probability map in "
            f"[0, 1], high = cell. Received: {name}.dtype={proposal.dtype}"
        )
    if np.isnan(proposal).any():
        raise ValueError(f"`{name}` must not contain NaN. Received: NaN values")
    lo, hi = float(proposal.min()), float(proposal.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"A float `{name}` must hold probabilities in [0, 1] (or pass uint8 "
            f"0-255). Received: min={lo:g}, max={hi:g}"
        )
    return proposal


def _check_thresholds(thresholds):
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(
            "`thresholds` must be a non-empty sequence of probabilities in [0, 1], "
            f"e.g. ISBI_THRESHOLDS. Received: thresholds={thresholds}"
        )
    return thresholds


def binarize(proposal, threshold):
    """Cell mask ``prob > threshold`` of a uint8 (0-255) or float [0, 1] map.

    A ``uint8`` value ``v`` stands for ``v / 255``; the comparison
    ``v / 255 > threshold`` is done exactly (``v > 255 * threshold`` with
    ``255 * threshold`` snapped to an integer when it is one up to rounding,
    e.g. ``threshold=0.2`` keeps ``v >= 52``).

    >>> binarize(np.array([[0, 51, 52, 255]], np.uint8), 0.2).tolist()
    [[False, False, True, True]]
    """
    proposal = np.asarray(proposal)
    threshold = float(threshold)
    if proposal.dtype == np.uint8:
        limit = 255.0 * threshold
        if abs(limit - round(limit)) < 1e-9:
            limit = float(round(limit))
        return proposal > limit
    return proposal > threshold


# ----------------------------------------------------------------------------
# segmentations of one slice
# ----------------------------------------------------------------------------
def connected_components(mask):
    """4-connected components of a 2D boolean mask: ``int32`` ids 1..K, 0 = background."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"`mask` must be a 2D array. Received: mask.shape={mask.shape}")
    _, labels = cv2.connectedComponents(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    return labels


def thin_boundaries(mask):
    """Split a binary cell mask into regions separated by one-pixel boundaries.

    The "border thinning" of the ISBI 2013 evaluation (Arganda-Carreras et
    al. 2015; Fiji ``RandError.getForegroundRestrictedRandAfterThinningStats``):
    the 4-connected components of ``mask`` are the markers, and the boundary
    (``False``) pixels are flooded from them breadth-first with
    4-connectivity (OpenCV's marker watershed on a flat image, pixels queued
    column by column as in Fiji). A boundary pixel reached by two different regions becomes a
    watershed pixel (0), so no two different regions touch (4-neighbourhood)
    and the boundaries left are one pixel wide; boundary pixels that only one
    region reaches join that region.

    Args:
        mask: 2D boolean array, ``True`` = cell.

    Returns:
        ``int32`` label image: 1..K = regions (one per component of ``mask``,
        grown into the boundary), 0 = watershed line. A mask without any
        cell pixel gives one region over the whole image, as in Fiji.
    """
    markers = connected_components(mask)
    n_regions = int(markers.max())
    if n_regions <= 1:
        # one region floods every boundary pixel (the image is 4-connected);
        # with no cell pixel at all Fiji's watershed sees a flat image, which
        # is a single basin: one region as well.
        return np.ones_like(markers)
    # Flood the transposed image so that OpenCV's raster order visits the
    # pixels column by column, as Fiji's WatershedTransform2D does (x outer,
    # y inner); this puts the lines where Fiji puts them in most ties.
    # OpenCV marks the outermost row/column as watershed; pad so that the
    # image's own border pixels are flooded like any other pixel.
    w, h = markers.shape
    padded = np.zeros((h + 2, w + 2), np.int32)
    padded[1:-1, 1:-1] = markers.T
    flat = np.zeros((h + 2, w + 2, 3), np.uint8)
    cv2.watershed(flat, padded)
    out = padded[1:-1, 1:-1].T
    out = np.where(out < 0, 0, out).astype(np.int32)
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------
# contingency-table scores of one slice
# ----------------------------------------------------------------------------
def _joint_counts(gt, seg):
    """Counts of the foreground-restricted contingency table.

    Returns ``(c, a, b, n0, n)``: non-zero joint counts ``c_ij`` over
    ground-truth pixels with ``seg > 0``, ground-truth region sizes ``a_i``,
    proposal region sizes ``b_j`` (within the ground-truth foreground),
    ``n0`` = ground-truth pixels where ``seg == 0`` (singletons), ``n``.
    """
    gt = np.asarray(gt).ravel()
    seg = np.asarray(seg).ravel()
    fg = gt > 0
    g = gt[fg].astype(np.int64)
    s = seg[fg].astype(np.int64)
    n = int(g.size)
    a = np.bincount(g)
    inside = s > 0
    n0 = int(n - np.count_nonzero(inside))
    g1, s1 = g[inside], s[inside]
    if g1.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, a, empty, n0, n
    b = np.bincount(s1)
    n_cols = int(s1.max()) + 1
    n_bins = (int(g1.max()) + 1) * n_cols
    joint = g1 * n_cols + s1
    if n_bins <= 4_000_000:
        c = np.bincount(joint, minlength=n_bins)
    else:
        _, c = np.unique(joint, return_counts=True)
    return c, a, b, n0, n


def rand_counts(gt, seg):
    """Foreground-restricted Rand counts of one slice (:class:`RandCounts`).

    Args:
        gt: 2D ground-truth region ids, 0 = membrane (left out).
        seg: 2D proposal region ids, 0 = boundary (each such pixel inside the
            ground-truth foreground is a singleton region).

    With self pairs included (Fiji's ``N^2`` normalisation),
    ``sum_ab = sum c_ij^2 + n0``, ``sum_a = sum a_i^2``,
    ``sum_b = sum b_j^2 + n0``, where ``n0`` counts the singletons.

    >>> gt = np.array([[1, 1, 2, 2]])
    >>> rand_counts(gt, np.array([[1, 1, 1, 0]]))
    RandCounts(sum_ab=6, sum_a=8, sum_b=10, n=4)
    """
    c, a, b, n0, n = _joint_counts(gt, seg)
    sq = lambda x: int(np.dot(x, x))  # noqa: E731  (int64 sums of squares)
    return RandCounts(sum_ab=sq(c) + n0, sum_a=sq(a), sum_b=sq(b) + n0, n=n)


def f_score(tp, fp, fn):
    """F-score with Fiji's ``ClassificationStatistics`` conventions.

    precision = 1 if ``fp == 0`` else ``tp / (tp + fp)``; recall = 1 if
    ``fn == 0`` else ``tp / (tp + fn)``; F = 0 if precision + recall = 0.

    >>> f_score(6, 4, 2), f_score(0, 0, 0), f_score(0, 3, 0)
    (0.6666666666666666, 1.0, 0.0)
    """
    # 2PR / (P + R) simplifies to 2 tp / (2 tp + fp + fn) whenever tp > 0
    # (also when fp or fn is 0); with tp = 0 it is 1 only if fp = fn = 0.
    if tp == 0:
        return 1.0 if fp == 0 and fn == 0 else 0.0
    return 2.0 * tp / (2.0 * tp + fp + fn)


def vrand_score(gt, seg):
    """Foreground-restricted Rand F-score of one slice (V_rand of the paper).

    ``V_rand = sum c_ij^2 / (0.5 sum a_i^2 + 0.5 sum b_j^2)``, proposal
    zeros as singletons; ``NaN`` when ``gt`` has no foreground pixel. Pass
    ``seg = thin_boundaries(mask)`` for the "after thinning" score.

    >>> vrand_score(np.array([[1, 1, 2, 2]]), np.array([[1, 1, 1, 0]]))
    0.6666666666666666
    """
    counts = rand_counts(gt, seg)
    if counts.n == 0:
        return math.nan
    return f_score(counts.tp, counts.fp, counts.fn)


def _xlogx_sum(counts):
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    return float(np.dot(counts, np.log(counts)))


def vinfo_score(gt, seg):
    """Foreground-restricted information-theoretic score of one slice (V_info).

    ``V_info = 2 I(S;T) / (H(S) + H(T))`` over the ground-truth foreground,
    proposal zeros as singletons (Arganda-Carreras et al. 2015, eq. 6-8).
    ``NaN`` when ``gt`` has no foreground pixel; 1.0 when both segmentations
    are a single region (Fiji: 0, see the module docstring).

    >>> round(vinfo_score(np.array([[1, 1, 2, 2]]), np.array([[1, 1, 2, 2]])), 6)
    1.0
    """
    c, a, b, n0, n = _joint_counts(gt, seg)
    if n == 0:
        return math.nan
    log_n = math.log(n)
    tol = 1e-12 * max(log_n, 1.0)

    def entropy(x):
        # H = log n - (1/n) sum x log x; a singleton adds 1 * log 1 = 0
        h = log_n - _xlogx_sum(x) / n
        return 0.0 if h < tol else h

    h_t, h_s, h_st = entropy(a), entropy(b), entropy(c)
    if h_t == 0.0 and h_s == 0.0:
        return 1.0  # both one region over the same pixels (Fiji: 0)
    if h_t == 0.0 or h_s == 0.0:
        return 0.0  # one side is a single region, so I(S;T) = 0
    mutual = h_s + h_t - h_st
    return max(0.0, min(1.0, 2.0 * mutual / (h_s + h_t)))


# ----------------------------------------------------------------------------
# the challenge scores of a stack
# ----------------------------------------------------------------------------
def _best(curve, thresholds):
    curve = np.asarray(curve, dtype=np.float64)
    if np.isnan(curve).all():
        return math.nan, math.nan
    k = int(np.nanargmax(curve))  # first maximum: lowest threshold
    return float(curve[k]), float(thresholds[k])


def isbi_scores(proposal, labels, *, thresholds=ISBI_THRESHOLDS):
    """V_rand, V_info, Rand error and pixel error of a stack, in one sweep.

    Each slice is binarised once per threshold; the ground-truth components,
    the proposal's components (Rand error) and its thinned regions
    (V_rand, V_info) feed vectorised contingency counts (``np.bincount`` on
    combined ids). Definitions: module docstring.

    Args:
        proposal: ``(N, H, W)`` or ``(H, W)`` map, ``uint8`` 0-255 or float in
            [0, 1]; high = cell (same polarity as ``labels``).
        labels: same shape, values {0, 255} (255 = cell) or boolean.
        thresholds: probabilities to sweep (default 0.0, 0.1, ..., 1.0).

    Returns:
        :class:`ISBIScores`.
    """
    proposal = _check_proposal(proposal)
    cell = _check_labels(labels)
    _check_same_shape(proposal, cell, "proposal", "labels")
    thresholds = _check_thresholds(thresholds)
    n_th, n_slices = len(thresholds), proposal.shape[0]

    v_rand_per = np.full((n_th, n_slices), np.nan)
    v_info_per = np.full((n_th, n_slices), np.nan)
    rand_tp = np.zeros(n_th)
    rand_fp = np.zeros(n_th)
    rand_fn = np.zeros(n_th)
    pix = np.zeros((n_th, 3))  # tp, fp, fn

    for z in range(n_slices):
        truth = cell[z]
        gt = connected_components(truth)
        has_fg = bool(truth.any())
        for k, th in enumerate(thresholds):
            seg_mask = binarize(proposal[z], th)
            tp = int(np.count_nonzero(seg_mask & truth))
            pix[k] += (
                tp,
                int(np.count_nonzero(seg_mask)) - tp,
                int(np.count_nonzero(truth)) - tp,
            )
            counts = rand_counts(gt, connected_components(seg_mask))
            rand_tp[k] += counts.tp
            rand_fp[k] += counts.fp
            rand_fn[k] += counts.fn
            if has_fg:
                thinned = thin_boundaries(seg_mask)
                v_rand_per[k, z] = vrand_score(gt, thinned)
                v_info_per[k, z] = vinfo_score(gt, thinned)

    def slice_mean(per):
        out = np.full(per.shape[0], np.nan)
        valid = ~np.isnan(per).all(axis=1)
        out[valid] = np.nanmean(per[valid], axis=1)
        return out

    v_rand_curve = slice_mean(v_rand_per)
    v_info_curve = slice_mean(v_info_per)
    rand_curve = np.array(
        [f_score(rand_tp[k], rand_fp[k], rand_fn[k]) for k in range(n_th)]
    )
    pixel_curve = np.array([f_score(*pix[k]) for k in range(n_th)])

    vr, vr_th = _best(v_rand_curve, thresholds)
    vi, vi_th = _best(v_info_curve, thresholds)
    rf, rf_th = _best(rand_curve, thresholds)
    pf, pf_th = _best(pixel_curve, thresholds)
    return ISBIScores(
        v_rand=vr,
        v_rand_threshold=vr_th,
        v_info=vi,
        v_info_threshold=vi_th,
        rand_error=1.0 - rf,
        rand_error_threshold=rf_th,
        pixel_error=1.0 - pf,
        pixel_error_threshold=pf_th,
        thresholds=thresholds,
        v_rand_curve=tuple(float(v) for v in v_rand_curve),
        v_info_curve=tuple(float(v) for v in v_info_curve),
        rand_fscore_curve=tuple(float(v) for v in rand_curve),
        pixel_fscore_curve=tuple(float(v) for v in pixel_curve),
    )


def fine_scores(proposal, labels):
    """V_rand and V_info maximised over :data:`FINE_THRESHOLDS` (0.00, 0.01, ..., 1.00).

    Returns a dict: ``v_rand_fine``, ``v_info_fine`` and the thresholds where
    they were reached (``v_rand_fine_threshold``, ``v_info_fine_threshold``).
    Each is at least the challenge's score of the same proposal, whose grid
    it holds. Arguments as :func:`isbi_scores`.
    """
    s = isbi_scores(proposal, labels, thresholds=FINE_THRESHOLDS)
    return {"v_rand_fine": s.v_rand, "v_rand_fine_threshold": s.v_rand_threshold,
            "v_info_fine": s.v_info, "v_info_fine_threshold": s.v_info_threshold}


def v_rand(proposal, labels, *, thresholds=ISBI_THRESHOLDS):
    """Maximal foreground-restricted Rand score after thinning (ISBI 2013). See :func:`isbi_scores`."""
    return isbi_scores(proposal, labels, thresholds=thresholds).v_rand


def v_info(proposal, labels, *, thresholds=ISBI_THRESHOLDS):
    """Maximal foreground-restricted information score after thinning. See :func:`isbi_scores`."""
    return isbi_scores(proposal, labels, thresholds=thresholds).v_info


def rand_error(proposal, labels, *, thresholds=ISBI_THRESHOLDS):
    """ISBI 2012 Rand error: 1 - maximal foreground-restricted Rand F-score."""
    return isbi_scores(proposal, labels, thresholds=thresholds).rand_error


def pixel_error(proposal, labels, *, thresholds=ISBI_THRESHOLDS):
    """ISBI 2012 pixel error: 1 - maximal F1 of the cell pixels."""
    return isbi_scores(proposal, labels, thresholds=thresholds).pixel_error
