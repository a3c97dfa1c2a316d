"""Tests of keras_unets.metrics.isbi: the ISBI 2012 challenge metrics.

Three ways: hand-derived cases (derivations in comments), invariants, and
independent references built here from other code:

* scikit-image's ``contingency_table`` / ``adapted_rand_error`` /
  ``variation_of_information`` with the proposal's zeros relabelled as
  singleton ids (raw skimage treats proposal label 0 as one segment),
* scikit-image's ``measure.label`` for the 4-connected components and its
  ``segmentation.watershed(..., watershed_line=True)`` for the thinning,
* a pure-Python Vincent-Soille flooding of a binary mask written for this
  test from the algorithm (Vincent & Soille, IEEE PAMI 13(6), 1991), visiting
  pixels and neighbours in the order Fiji's ``WatershedTransform2D`` uses
  (column-major pixels; neighbours left, up, right, down), i.e. the thinning
  the challenge server ran.
"""
import json
import math
from collections import deque

import cv2
import numpy as np
import pytest
from scipy.stats import entropy as sp_entropy
from skimage.measure import label as sk_label
from skimage.metrics import adapted_rand_error, contingency_table, variation_of_information
from skimage.segmentation import watershed as sk_watershed

from keras_unets.metrics import isbi
from keras_unets.metrics.isbi import (
    FINE_THRESHOLDS,
    ISBI_THRESHOLDS,
    binarize,
    connected_components,
    f_score,
    isbi_scores,
    rand_counts,
    thin_boundaries,
    vinfo_score,
    vrand_score,
)
from keras_unets.metrics import threshold_sweep, to_uint8


# ----------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------
def singletons(seg):
    """Proposal with every 0 pixel given its own new id (Fiji's singletons)."""
    seg = np.asarray(seg, dtype=np.int64).copy()
    zeros = seg == 0
    seg[zeros] = seg.max() + 1 + np.arange(int(zeros.sum()))
    return seg


def ref_rand_sums(gt, seg):
    """(sum c^2, sum a^2, sum b^2) from skimage's contingency table."""
    table = contingency_table(gt, singletons(seg), ignore_labels=[0]).tocsr()
    rows = np.asarray(table.sum(axis=1)).ravel()
    cols = np.asarray(table.sum(axis=0)).ravel()
    return float(table.data @ table.data), float(rows @ rows), float(cols @ cols)


def ref_vrand(gt, seg):
    sum_ab, sum_a, sum_b = ref_rand_sums(gt, seg)
    return 2 * sum_ab / (sum_a + sum_b)


def ref_vinfo(gt, seg):
    """V_info = 1 - VI / (H(S) + H(T)) over the ground-truth foreground (skimage + scipy)."""
    fg = np.asarray(gt) > 0
    t = np.asarray(gt)[fg]
    s = singletons(seg)[fg]
    h_t = sp_entropy(np.unique(t, return_counts=True)[1], base=2)
    h_s = sp_entropy(np.unique(s, return_counts=True)[1], base=2)
    vi = variation_of_information(t, s).sum()
    return 1 - vi / (h_s + h_t)


def vincent_soille_binary(mask):
    """Watershed of a binary image (cells = level 0, boundary = level 1), 4-connected.

    Written from Vincent & Soille (1991), with Fiji's visiting order. Returns
    region ids 1..K and 0 for watershed (or never reached) pixels.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    init, masked, wshed, inqueue = -1, -2, 0, -3
    lab = np.full((h, w), init, np.int64)
    order = [(y, x) for x in range(w) for y in range(h)]

    def neighbours(y, x):
        for yy, xx in ((y, x - 1), (y - 1, x), (y, x + 1), (y + 1, x)):
            if 0 <= yy < h and 0 <= xx < w:
                yield yy, xx

    current, flag = 0, False
    for level in ([p for p in order if mask[p]], [p for p in order if not mask[p]]):
        fifo = deque()
        for p in level:
            lab[p] = masked
            if any(lab[q] >= wshed for q in neighbours(*p)):
                lab[p] = inqueue
                fifo.append(p)
        while fifo:
            p = fifo.popleft()
            for q in neighbours(*p):
                if lab[q] > 0:
                    if lab[p] == inqueue or (lab[p] == wshed and flag):
                        lab[p] = lab[q]
                    elif lab[p] > 0 and lab[p] != lab[q]:
                        lab[p], flag = wshed, False
                elif lab[q] == wshed:
                    if lab[p] == inqueue:
                        lab[p], flag = wshed, True
                elif lab[q] == masked:
                    lab[q] = inqueue
                    fifo.append(q)
        for p in level:  # new minima at this level
            if lab[p] == masked:
                current += 1
                lab[p] = current
                fifo.append(p)
                while fifo:
                    p2 = fifo.popleft()
                    for q in neighbours(*p2):
                        if lab[q] == masked:
                            lab[q] = current
                            fifo.append(q)
    lab[lab == init] = 0
    return lab


def skimage_thin(mask):
    markers = sk_label(mask, connectivity=1)
    if markers.max() == 0:
        return np.ones_like(markers)  # as Fiji: a flat image is one basin
    return sk_watershed(np.zeros(mask.shape), markers=markers, connectivity=1, watershed_line=True)


def reference_isbi(pred_u8, labels, thin):
    """The four challenge scores from the references above (thin: mask -> regions)."""
    prob = pred_u8 / 255.0
    v_rand, v_info, rand_f, pix_f = [], [], [], []
    for th in ISBI_THRESHOLDS:
        vr, vi = [], []
        tp = fp = fn = 0.0
        ptp = pfp = pfn = 0
        for z in range(pred_u8.shape[0]):
            truth = labels[z] == 255
            gt = sk_label(truth, connectivity=1)
            mask = prob[z] > th
            thinned = thin(mask)
            vr.append(ref_vrand(gt, thinned))
            vi.append(ref_vinfo(gt, thinned))
            sum_ab, sum_a, sum_b = ref_rand_sums(gt, sk_label(mask, connectivity=1))
            tp, fp, fn = tp + sum_ab, fp + sum_b - sum_ab, fn + sum_a - sum_ab
            ptp += int((mask & truth).sum())
            pfp += int((mask & ~truth).sum())
            pfn += int((~mask & truth).sum())
        v_rand.append(np.mean(vr))
        v_info.append(np.mean(vi))
        rand_f.append(2 * tp / (2 * tp + fp + fn))
        pix_f.append(2 * ptp / (2 * ptp + pfp + pfn))
    return {
        "v_rand": np.array(v_rand),
        "v_info": np.array(v_info),
        "rand_f": np.array(rand_f),
        "pixel_f": np.array(pix_f),
    }


def label_stack_path(data_dir):
    """The training labels: TIFF volume, or the PNG folder layout."""
    tif = data_dir / "train-labels.tif"
    return tif if tif.exists() else data_dir / "png" / "train" / "label"


@pytest.fixture(scope="module")
def slices_25_29(synthetic_isbi_full_dir):
    """Label slices 25-29 of an ISBI-layout folder: synthetic 512 x 512 px cells."""
    from keras_unets.data import read_stack

    return read_stack(label_stack_path(synthetic_isbi_full_dir))[25:30]


def blurred_probability(labels, *, sigma=2.0, noise=0.15, seed=0):
    """A probability volume without a model: blurred, noised labels as uint8."""
    rng = np.random.default_rng(seed)
    prob = np.stack(
        [cv2.GaussianBlur(lab.astype(np.float32) / 255, (0, 0), sigma) for lab in labels]
    )
    return to_uint8(np.clip(prob + rng.normal(0, noise, prob.shape), 0, 1))


# ----------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------
def test_rand_counts_and_vrand_hand_case():
    # gt: regions 1 = {p0, p1}, 2 = {p2, p3}; proposal: region 1 = {p0, p1, p2},
    # p3 a boundary pixel -> singleton.
    # c: (1,1) = 2, (2,1) = 1, singleton 1 -> sum c^2 = 4 + 1 + 1 = 6
    # a = (2, 2) -> 8; b = (3) + singleton -> 9 + 1 = 10
    # V_rand = 6 / (0.5 * 8 + 0.5 * 10) = 2/3
    gt = np.array([[1, 1, 2, 2]])
    seg = np.array([[1, 1, 1, 0]])
    counts = rand_counts(gt, seg)
    assert (counts.sum_ab, counts.sum_a, counts.sum_b, counts.n) == (6, 8, 10, 4)
    assert (counts.tp, counts.fp, counts.fn) == (6, 4, 2)
    assert vrand_score(gt, seg) == pytest.approx(2 / 3, abs=1e-15)


def test_membrane_pixels_are_left_out():
    # gt membrane (0) pixels do not count, whatever the proposal says there
    gt = np.array([[1, 1, 0, 2, 2]])
    a = vrand_score(gt, np.array([[1, 1, 1, 2, 2]]))
    b = vrand_score(gt, np.array([[1, 1, 0, 2, 2]]))
    assert a == b == 1.0
    # merging the two gt regions through the membrane is an error:
    # c = 4 (one proposal region) -> sum c^2 = 16, a = 2^2 + 2^2 = 8, b = 16
    # V_rand = 16 / (4 + 8) = 4/3? no: 2 * sum_ab / (sum_a + sum_b) = 32 / 24... see below
    merged = rand_counts(gt, np.array([[1, 1, 1, 1, 1]]))
    # c_11 = 2, c_21 = 2 -> sum c^2 = 8 (not 16: pairs across regions are not joint)
    assert (merged.sum_ab, merged.sum_a, merged.sum_b) == (8, 8, 16)
    assert vrand_score(gt, np.array([[1, 1, 1, 1, 1]])) == pytest.approx(2 * 8 / 24)


def test_vinfo_hand_case():
    # same case as the Rand one, n = 4, natural logs:
    # H(T) = log 2; S sizes (3, 1) -> H(S) = -(3/4 log 3/4 + 1/4 log 1/4)
    # joint (2, 1, 1)/4 -> H(S,T) = -(1/2 log 1/2 + 2 * 1/4 log 1/4) = 1.5 log 2
    gt = np.array([[1, 1, 2, 2]])
    seg = np.array([[1, 1, 1, 0]])
    h_t = math.log(2)
    h_s = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_st = 1.5 * math.log(2)
    expected = 2 * (h_s + h_t - h_st) / (h_s + h_t)
    assert vinfo_score(gt, seg) == pytest.approx(expected, abs=1e-12)


def test_vinfo_edge_cases():
    gt = np.array([[1, 1, 1, 1]])
    # both a single region: perfect (Fiji would say 0; documented choice)
    assert vinfo_score(gt, np.array([[5, 5, 5, 5]])) == 1.0
    # single gt region, proposal split: I(S;T) = 0
    assert vinfo_score(gt, np.array([[1, 1, 2, 2]])) == 0.0
    # no ground-truth foreground: undefined
    assert math.isnan(vinfo_score(np.zeros((2, 2), int), np.ones((2, 2), int)))
    assert math.isnan(vrand_score(np.zeros((2, 2), int), np.ones((2, 2), int)))


def test_f_score_conventions():
    # Fiji ClassificationStatistics: P = 1 if fp == 0, R = 1 if fn == 0
    assert f_score(6, 4, 2) == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert f_score(5, 0, 0) == 1.0
    assert f_score(0, 0, 0) == 1.0
    assert f_score(0, 1, 0) == 0.0 and f_score(0, 0, 1) == 0.0
    assert f_score(3, 0, 1) == pytest.approx(2 * 0.75 / 1.75)


def test_binarize_uint8_is_exact_at_ties():
    # v / 255 > th: 51/255 = 0.2 exactly, so 51 is not above 0.2; 52 is
    values = np.array([0, 25, 26, 51, 52, 204, 205, 254, 255], np.uint8)
    assert binarize(values, 0.0).tolist() == [False] + [True] * 8
    assert binarize(values, 0.1).tolist() == [False, False, True, True, True, True, True, True, True]
    assert binarize(values, 0.2).tolist() == [False] * 4 + [True] * 5
    assert binarize(values, 0.8).tolist() == [False] * 6 + [True] * 3
    assert not binarize(values, 1.0).any()
    # the same decisions as comparing the float probabilities
    for th in ISBI_THRESHOLDS:
        np.testing.assert_array_equal(binarize(values, th), values / 255.0 > th)


# ----------------------------------------------------------------------------
# thinning
# ----------------------------------------------------------------------------
def test_thin_boundaries_hand_cases():
    # odd gap: the middle pixel is the line
    assert thin_boundaries(np.array([[1, 1, 0, 1, 1]], bool)).tolist() == [[1, 1, 0, 2, 2]]
    # even gap of 2: one pixel joins a side, the other is the line
    out = thin_boundaries(np.array([[1, 1, 0, 0, 1, 1]], bool))
    assert (out == 0).sum() == 1 and out[0, 0] != out[0, 5]
    assert out[0, 2] == 0 or out[0, 3] == 0
    # a hole inside one cell is swallowed; a wide membrane is thinned to one column
    hole = np.ones((5, 5), bool)
    hole[2, 2] = False
    assert (thin_boundaries(hole) == 1).all()
    band = np.zeros((3, 7), bool)
    band[:, 0] = band[:, 6] = True
    assert thin_boundaries(band).tolist() == [[1, 1, 1, 0, 2, 2, 2]] * 3
    # no cell at all: Fiji's watershed makes the whole flat image one basin
    assert (thin_boundaries(np.zeros((3, 3), bool)) == 1).all()
    np.testing.assert_array_equal(vincent_soille_binary(np.zeros((3, 3), bool)), 1)


def test_thin_boundaries_matches_vincent_soille_on_small_cases():
    for mask in (
        np.array([[1, 1, 0, 1, 1]], bool),
        np.array([[1, 1, 0, 0, 1, 1]], bool).T,
        np.array([[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], bool),
    ):
        np.testing.assert_array_equal(thin_boundaries(mask) == 0, vincent_soille_binary(mask) == 0)


@pytest.mark.parametrize("seed", range(4))
def test_thin_boundaries_invariants(seed):
    rng = np.random.default_rng(seed)
    mask = cv2.GaussianBlur(rng.random((40, 50)), (0, 0), 1.5) > 0.5
    out = thin_boundaries(mask)
    comps = connected_components(mask)
    # every cell pixel keeps a region; each component maps to its own region
    assert (out[mask] > 0).all()
    pairs = np.unique(np.stack([comps[mask], out[mask]]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    # no two different regions touch (4-neighbourhood): lines separate them
    for a, b in ((out[:, 1:], out[:, :-1]), (out[1:], out[:-1])):
        assert not ((a != b) & (a > 0) & (b > 0)).any()
    # every line pixel is a real watershed: >= 2 distinct regions around it
    padded = np.pad(out, 1)
    ys, xs = np.nonzero(out == 0)
    for y, x in zip(ys + 1, xs + 1):
        around = {padded[y - 1, x], padded[y + 1, x], padded[y, x - 1], padded[y, x + 1]} - {0}
        assert len(around) >= 2 or not around


# ----------------------------------------------------------------------------
# invariants
# ----------------------------------------------------------------------------
def test_perfect_prediction_scores(slices_25_29):
    labels = slices_25_29[:2, :128, :128]
    for proposal in (labels, labels / 255.0, labels.astype(np.float32) / 255):
        scores = isbi_scores(proposal, labels)
        assert scores.v_rand == 1.0
        assert scores.v_info == pytest.approx(1.0, abs=1e-12)
        assert scores.rand_error == 0.0
        assert scores.pixel_error == 0.0
        assert scores.v_rand_threshold == 0.0  # first of the tied thresholds


def test_fine_grid_finds_a_best_threshold_between_the_challenges():
    """Two cells split by a one-pixel membrane that the proposal gives P(cell) = 237/255.

    At every challenge threshold up to 0.9 the membrane is cell (237 > 229.5),
    so the two cells merge into one region; at 1.0 nothing is cell. On the
    0.01 grid the membrane first appears at 0.93 (237 <= 237.15) and the
    segmentation is perfect.
    """
    assert set(ISBI_THRESHOLDS) <= set(FINE_THRESHOLDS) and len(FINE_THRESHOLDS) == 101
    labels = np.full((1, 32, 32), 255, np.uint8)
    labels[0, :, 16] = 0
    proposal = labels.copy()
    proposal[0, :, 16] = 237
    coarse = isbi_scores(proposal, labels)
    fine = isbi_scores(proposal, labels, thresholds=FINE_THRESHOLDS)
    sum_a = (32 * 16) ** 2 + (32 * 15) ** 2  # the two ground-truth cells
    merged = sum_a / (0.5 * sum_a + 0.5 * (32 * 31) ** 2)  # one proposal region
    assert coarse.v_rand == pytest.approx(merged, rel=1e-12) and coarse.v_rand_threshold == 0.0
    assert fine.v_rand == 1.0 and fine.v_rand_threshold == 0.93
    assert fine.v_info == pytest.approx(1.0, abs=1e-12) and fine.v_info_threshold == 0.93
    assert isbi.fine_scores(proposal, labels) == {
        "v_rand_fine": fine.v_rand, "v_rand_fine_threshold": 0.93,
        "v_info_fine": fine.v_info, "v_info_fine_threshold": 0.93}
    # the curves agree wherever the grids do
    for k, th in enumerate(ISBI_THRESHOLDS):
        assert fine.v_rand_curve[FINE_THRESHOLDS.index(th)] == coarse.v_rand_curve[k]


def test_scores_ignore_label_ids_and_orientation():
    rng = np.random.default_rng(2)
    gt = sk_label(cv2.GaussianBlur(rng.random((60, 60)), (0, 0), 2) > 0.5, connectivity=1)
    seg = thin_boundaries(cv2.GaussianBlur(rng.random((60, 60)), (0, 0), 2) > 0.45)
    base = (vrand_score(gt, seg), vinfo_score(gt, seg))
    perm_gt = np.concatenate([[0], rng.permutation(np.arange(1, gt.max() + 1)) + 100])[gt]
    perm_seg = np.concatenate([[0], rng.permutation(np.arange(1, seg.max() + 1)) + 7])[seg]
    assert (vrand_score(perm_gt, perm_seg), vinfo_score(perm_gt, perm_seg)) == pytest.approx(base, abs=1e-12)
    # the stack scores do not depend on slice order or a transposition
    labels = np.where(gt > 0, 255, 0).astype(np.uint8)[None].repeat(2, 0)
    pred = to_uint8(cv2.GaussianBlur(labels[0] / 255.0, (0, 0), 1.5))[None].repeat(2, 0)
    pred[1] = pred[1][:, ::-1]
    labels[1] = labels[1][:, ::-1]
    a = isbi_scores(pred, labels)
    b = isbi_scores(pred[::-1], labels[::-1])
    for key in ("v_rand", "v_info", "rand_error", "pixel_error"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1e-12), key
    # transposed slices: the 2012 scores (no thinning) are unchanged; the
    # flooding order of the thinning changes, so V_rand may move a little
    c = isbi_scores(pred.transpose(0, 2, 1), labels.transpose(0, 2, 1))
    assert c.rand_error == pytest.approx(a.rand_error, abs=1e-12)
    assert c.pixel_error == a.pixel_error
    assert c.v_rand == pytest.approx(a.v_rand, abs=1e-3)


def test_isbi_scores_input_errors():
    labels = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"\[0, 1\].*max=2"):
        isbi_scores(np.full((1, 4, 4), 2.0), labels)
    with pytest.raises(ValueError, match="dtype=int64"):
        isbi_scores(np.zeros((1, 4, 4), np.int64), labels)
    with pytest.raises(ValueError, match="same"):
        isbi_scores(np.zeros((1, 4, 5), np.uint8), labels)
    with pytest.raises(ValueError, match="thresholds"):
        isbi_scores(labels, labels, thresholds=(0.5, 1.5))


# ----------------------------------------------------------------------------
# independent references on label slices 25-29
# ----------------------------------------------------------------------------
def test_rand_formula_matches_skimage(slices_25_29):
    labels = slices_25_29
    pred = blurred_probability(labels)
    for z in (0, 3):
        gt = connected_components(labels[z] == 255)
        for th in (0.4, 0.6, 0.8):
            mask = binarize(pred[z], th)
            for seg in (thin_boundaries(mask), connected_components(mask)):
                ours = vrand_score(gt, seg)
                # exact: the same formula from skimage's contingency table
                assert ours == pytest.approx(ref_vrand(gt, seg), abs=1e-12)
                # skimage's adapted Rand (no self pairs) is within 1e-4 once
                # proposal zeros are singletons (Arganda-Carreras et al. 2015)
                are, _, _ = adapted_rand_error(gt, singletons(seg), ignore_labels=(0,))
                assert ours == pytest.approx(1 - are, abs=1e-4)
                assert vinfo_score(gt, seg) == pytest.approx(ref_vinfo(gt, seg), abs=1e-9)


def test_thinning_close_to_fiji_vincent_soille(slices_25_29):
    """Crops of slices 25-29: our OpenCV flooding vs Fiji's Vincent-Soille order."""
    labels = slices_25_29[:, :96, :96]
    pred = blurred_probability(slices_25_29)[:, :96, :96]
    ref = reference_isbi(pred, labels, vincent_soille_binary)
    ours = isbi_scores(pred, labels)
    # the two floods put a few lines one pixel apart (module docstring);
    # measured on these slices: curves within 4.3e-4 (V_rand) / 7.7e-4
    # (V_info), the maxima equal
    np.testing.assert_allclose(ours.v_rand_curve, ref["v_rand"], atol=1e-3)
    np.testing.assert_allclose(ours.v_info_curve, ref["v_info"], atol=1e-3)
    assert ours.v_rand == pytest.approx(ref["v_rand"].max(), abs=1e-4)
    assert ours.v_info == pytest.approx(ref["v_info"].max(), abs=1e-4)
    # no thinning in the 2012 scores: exact
    np.testing.assert_allclose(ours.rand_fscore_curve, ref["rand_f"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.pixel_fscore_curve, ref["pixel_f"], rtol=0, atol=1e-12)


def test_evaluate_matches_independent_implementation(slices_25_29, synthetic_isbi_full_dir,
                                                      tmp_path):
    """Done-means check: ``keras-unets evaluate`` on a probability volume for 25-29.

    The volume is written as a uint8 TIFF, scored through the CLI against
    an ISBI-layout ``train-labels.tif`` with ``--slices 25-29``, and compared
    with the independent implementation above (skimage + brute force).
    """
    from click.testing import CliRunner

    from keras_unets.cli import main
    from keras_unets.data import write_stack

    labels = slices_25_29
    pred = blurred_probability(labels)
    pred_path = write_stack(tmp_path / "pred_25-29.tif", pred)
    run = CliRunner().invoke(
        main,
        ["evaluate", str(pred_path), "--labels", str(label_stack_path(synthetic_isbi_full_dir)),
         "--slices", "25-29", "--json"],
    )
    assert run.exit_code == 0, run.output
    result = json.loads(run.output)
    assert result["slices"] == [25, 26, 27, 28, 29]
    ref = reference_isbi(pred, labels, skimage_thin)

    # report accuracy: brute force over all 256 thresholds, exact
    brute = np.array([np.mean(np.where(pred > t, 255, 0) == labels) for t in range(256)])
    assert result["best_threshold"] == int(np.argmax(brute))
    assert result["best_accuracy"] == brute.max() == result["pixel_accuracy"]
    # 2012 scores: exact
    assert result["rand_error"] == pytest.approx(1 - ref["rand_f"].max(), abs=1e-12)
    assert result["pixel_error"] == pytest.approx(1 - ref["pixel_f"].max(), abs=1e-12)
    # 2013 scores: skimage's watershed lines sit up to a pixel off ours
    # (measured on these slices: V_rand 0.99891 vs 0.99889, V_info 0.99831 vs 0.99829)
    assert result["v_rand"] == pytest.approx(ref["v_rand"].max(), abs=1e-3)
    assert result["v_info"] == pytest.approx(ref["v_info"].max(), abs=1e-3)
    # Dice / IoU at the best threshold, counted directly
    t = result["threshold"]
    p, g = pred > t, labels == 255
    inter = (p & g).sum(axis=(1, 2))
    dice = 2 * inter / (p.sum(axis=(1, 2)) + g.sum(axis=(1, 2)))
    iou = inter / (p | g).sum(axis=(1, 2))
    assert result["dice"] == pytest.approx(dice.mean(), abs=1e-12)
    assert result["iou"] == pytest.approx(iou.mean(), abs=1e-12)
    # sanity: a good but imperfect probability map
    assert 0.9 < result["pixel_accuracy"] < 1.0
    assert 0.9 < result["v_rand"] < 1.0 and 0 < result["rand_error"] < 0.1
    assert result["pixel_accuracy"] == threshold_sweep(pred, labels).max()


def test_wrappers_agree_with_isbi_scores(slices_25_29):
    labels = slices_25_29[:1, :64, :64]
    pred = blurred_probability(labels)
    scores = isbi_scores(pred, labels)
    assert isbi.v_rand(pred, labels) == scores.v_rand
    assert isbi.v_info(pred, labels) == scores.v_info
    assert isbi.rand_error(pred, labels) == scores.rand_error
    assert isbi.pixel_error(pred, labels) == scores.pixel_error
    assert set(scores.as_dict()) >= {"v_rand", "v_info", "rand_error", "pixel_error"}


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(isbi, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0
