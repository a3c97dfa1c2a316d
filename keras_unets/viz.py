"""Pictures and tables of what the networks do, for the notebooks.

Everything here returns arrays or markdown text, except :func:`plot_panels`,
the notebooks' one figure helper (``matplotlib.pyplot.imshow`` takes every
array as it is).

* :func:`error_masks`, :func:`error_overlay`: where a binarised prediction
  disagrees with the label, in two colours. Polarity as everywhere in the
  package (``DESIGN.md``): 255 = cell, predictions are ``P(cell)`` on the
  uint8 0-255 scale binarised as ``pred > threshold``. A *false positive* is
  a pixel predicted cell on a membrane (a gap in a membrane: two cells
  merge); a *false negative* a pixel predicted membrane inside a cell (a
  spurious membrane: a cell splits).
* :func:`grid_image`: a line grid that makes a warp visible (apply the same
  :class:`keras_unets.augment.Augmenter` parameters to it as to the image);
  :func:`augmented_pair`: one augmented crop with its label (and weight
  map) and the warp drawn on such a grid, as titled panels.
* :func:`block_summary`, :func:`block_table`: a model's structure one row per
  block (U-Net level, UNet++ node X^{i,j}, UNet 3+ scale), with parameters.
* :func:`concat_inputs`, :func:`feature_maps`: the tensors that meet in one
  decoder node (UNet 3+ full-scale skips, Huang et al., ICASSP 2020, Fig. 1
  and section 2.1) and their activations for an image.
* :func:`metrics_table`: :func:`keras_unets.metrics.evaluate` results side by
  side.

* :func:`prediction_panels`: a slice, its label, the prediction and the
  :func:`error_overlay`, as titled panels of one window.
* :func:`plot_panels`: titled images in one matplotlib figure (the only
  plotting here; matplotlib is imported inside it).

Only :func:`feature_maps` runs Keras (imported inside it); the rest is numpy.
"""
import difflib
import re

import numpy as np

from keras_unets.metrics.pixel import (
    _as_stack,
    _check_labels,
    _check_pred_uint8,
    _check_same_shape,
    _check_threshold,
)

__all__ = [
    "ERROR_COLORS",
    "METRICS_COLUMNS",
    "augmented_pair",
    "block_summary",
    "block_table",
    "concat_inputs",
    "error_masks",
    "error_overlay",
    "feature_maps",
    "grid_image",
    "metrics_table",
    "plot_panels",
    "prediction_panels",
]

#: RGB of the two error kinds in :func:`error_overlay`: false positive (cell
#: predicted on a membrane) red, false negative (membrane predicted in a
#: cell) blue.
ERROR_COLORS = {"fp": (255, 40, 40), "fn": (40, 140, 255)}

#: ``(key of keras_unets.metrics.evaluate, column title)`` of :func:`metrics_table`.
METRICS_COLUMNS = (
    ("pixel_accuracy", "pixel accuracy"),
    ("threshold", "threshold t"),
    ("dice", "Dice"),
    ("iou", "IoU"),
    ("v_rand", "V_rand"),
    ("v_info", "V_info"),
)

# the last name part of a layer that belongs to the block named before it
_PART_SUFFIX = re.compile(
    r"^(conv|bn|relu|drop|dropout|pool|up|upconv|concat|seg|act|activation)\d*$")
_POOLING = ("MaxPooling2D", "AveragePooling2D")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def error_masks(pred, labels, threshold):
    """Boolean false-positive and false-negative masks of ``pred > threshold``.

    Args:
        pred: ``uint8`` ``(H, W)`` or ``(N, H, W)`` P(cell) on the 0-255 scale.
        labels: same shape, {0, 255}, 255 = cell.
        threshold: integer 0..255; a pixel is predicted cell where
            ``pred > threshold`` (the report's binarisation).

    Returns:
        ``(fp, fn)``, boolean arrays of ``pred``'s shape: ``fp`` predicted
        cell on a membrane pixel, ``fn`` predicted membrane on a cell pixel.

    Example:
        >>> fp, fn = error_masks(np.array([[200, 10, 200, 10]], np.uint8),
        ...                      np.array([[255, 255, 0, 0]], np.uint8), 127)
        >>> fp.astype(int).tolist(), fn.astype(int).tolist()
        ([[0, 0, 1, 0]], [[0, 1, 0, 0]])
    """
    squeeze = np.ndim(pred) == 2
    p = _check_pred_uint8(pred)
    cell = _check_labels(labels)
    _check_same_shape(p, cell)
    predicted_cell = p > _check_threshold(threshold)
    fp = predicted_cell & ~cell
    fn = ~predicted_cell & cell
    return (fp[0], fn[0]) if squeeze else (fp, fn)


def _check_color(name, color):
    rgb = np.asarray(color)
    if rgb.shape != (3,) or not np.all((rgb >= 0) & (rgb <= 255)):
        raise ValueError(f"`{name}` must be an (R, G, B) triple of 0..255. "
                         f"Received: {name}={color!r}")
    return rgb.astype(np.float32)


def error_overlay(image, pred, labels, threshold, *, alpha=0.7, fp_color=None, fn_color=None):
    """The grey image in RGB with false positives and false negatives painted on.

    Args:
        image: ``uint8`` ``(H, W)`` or ``(N, H, W)``, the EM slice(s).
        pred, labels, threshold: as :func:`error_masks`.
        alpha: opacity of the colours, 0 (invisible) .. 1 (opaque).
        fp_color, fn_color: RGB of the two error kinds (default
            :data:`ERROR_COLORS`).

    Returns:
        ``uint8`` ``(..., H, W, 3)``: ``round((1 - alpha) * grey + alpha *
        colour)`` on error pixels, the grey value elsewhere.
    """
    squeeze = np.ndim(image) == 2
    img = _as_stack(image, "image")
    if img.dtype != np.uint8:
        raise ValueError(f"`image` must be uint8 (N, H, W) or (H, W). Received: image.dtype={img.dtype}")
    fp, fn = error_masks(_as_stack(pred, "pred"), _as_stack(labels, "labels"), threshold)
    _check_same_shape(img, fp, "image", "pred")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    colors = (_check_color("fp_color", ERROR_COLORS["fp"] if fp_color is None else fp_color),
              _check_color("fn_color", ERROR_COLORS["fn"] if fn_color is None else fn_color))
    rgb = np.repeat(img[..., None].astype(np.float32), 3, axis=-1)
    for mask, color in zip((fp, fn), colors):
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * color
    out = np.rint(rgb).astype(np.uint8)
    return out[0] if squeeze else out


def prediction_panels(image, pred, labels, threshold, *, window=None, name="P(cell)",
                      title="slice"):
    """``[(array, title), ...]``: slice, label, prediction and error overlay.

    ``pred`` is ``uint8`` ``P(cell)`` binarised as ``pred > threshold`` (see
    :func:`error_overlay`); ``window`` a ``(slice, slice)`` of the image to
    show (default: all of it); ``name`` titles the prediction panel.
    """
    overlay = error_overlay(image, pred, labels, threshold)
    window = np.s_[:, :] if window is None else window
    return [(np.asarray(image)[window], title), (np.asarray(labels)[window], "label"),
            (np.asarray(pred)[window], name),
            (overlay[window], "errors: red FP, blue FN")]


# ---------------------------------------------------------------------------
# Warps
# ---------------------------------------------------------------------------
def grid_image(shape, *, spacing=16, width=1):
    """``uint8`` ``(H, W)`` image: 255 on grid lines every ``spacing`` pixels, else 0.

    Lines cover rows and columns ``k * spacing .. k * spacing + width - 1``.
    Warped with the parameters of an augmentation, it shows the deformation.

    >>> grid_image((3, 5), spacing=2).tolist()
    [[255, 255, 255, 255, 255], [255, 0, 255, 0, 255], [255, 255, 255, 255, 255]]
    """
    if len(tuple(shape)) != 2:
        raise ValueError(f"`shape` must be (H, W). Received: shape={shape!r}")
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"`shape` must be positive. Received: shape={shape!r}")
    if int(spacing) < 2 or not 1 <= int(width) < int(spacing):
        raise ValueError("`spacing` must be >= 2 and 1 <= `width` < `spacing`. "
                         f"Received: spacing={spacing!r}, width={width!r}")
    rows = (np.arange(h) % int(spacing)) < int(width)
    cols = (np.arange(w) % int(spacing)) < int(width)
    return np.where(rows[:, None] | cols[None, :], 255, 0).astype(np.uint8)


def augmented_pair(augmenter, image, label, *, seed, weights=None, size=256,
                   offset=None, grid_spacing=16):
    """One augmented ``size x size`` crop of a slice, as ``(panels, params)``.

    The crop window is at ``offset`` (default: the slice centre). ``panels``
    is a list of ``(array, title)``: the unwarped crop, its label (and weight
    map), the warped crop, label (and weight map), then the warp drawn on
    :func:`grid_image` (with ``"elastic"`` in ``params``, first its elastic
    part alone). ``params`` are the drawn
    :meth:`keras_unets.augment.Augmenter.get_random_transform` parameters
    (``seed`` seeds ``numpy.random.default_rng``).
    """
    image, label = np.asarray(image), np.asarray(label)
    if image.ndim != 2 or image.shape != label.shape:
        raise ValueError("augmented_pair takes one (H, W) slice and its (H, W) label. "
                         f"Received: image {image.shape}, label {label.shape}")
    size = int(size)
    if not 1 <= size <= min(image.shape):
        raise ValueError(f"`size` must be in [1, {min(image.shape)}] for a {image.shape} "
                         f"slice. Received: size={size}")
    if offset is None:
        offset = tuple((n - size) // 2 for n in image.shape)
    r0, c0 = (int(v) for v in offset)
    if not (0 <= r0 <= image.shape[0] - size and 0 <= c0 <= image.shape[1] - size):
        raise ValueError(f"The {size} px window at offset={offset!r} leaves the "
                         f"{image.shape} slice.")
    params = augmenter.get_random_transform((size, size), np.random.default_rng(seed))
    window = {"out_shape": (size, size), "offset": (r0, c0)}
    crop = np.s_[r0:r0 + size, c0:c0 + size]
    grid = grid_image(image.shape, spacing=grid_spacing)
    maps = [(image, "crop"), (label, "its label")]
    extra = {}
    if weights is not None:
        maps.append((np.asarray(weights), "its weight map"))
        extra["weights"] = weights
    aug = augmenter.apply_transform(image, label, params, **extra, **window)
    before = [(m[crop], title) for m, title in maps]
    after = [(a, "augmented " + title.removeprefix("its ")) for a, (_, title) in zip(aug, maps)]
    warps = []
    if params.get("elastic") is not None:
        warps.append((augmenter.apply_transform(grid, params={"elastic": params["elastic"]},
                                                **window), "elastic part of the warp"))
    warps.append((augmenter.apply_transform(grid, params=params, **window), "whole warp"))
    return before + after + warps, params


def plot_panels(panels, *, ncols=None, figsize=None, colorbar_titles=("weight",), **imshow):
    """Show ``[(array, title), ...]`` in one figure; returns the figure.

    ``ncols`` defaults to one row. Panels whose title contains a word of
    ``colorbar_titles`` get the ``magma`` colour map and a colour bar (weight
    maps); ``imshow`` keywords go to every other panel.
    """
    import matplotlib.pyplot as plt

    panels = list(panels)
    ncols = int(ncols or len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=figsize or (3.2 * ncols, 3.4 * nrows))
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (img, title) in zip(axes.flat, panels):
        scale = any(word in title for word in colorbar_titles)
        shown = ax.imshow(img, **({"cmap": "magma"} if scale else imshow))
        ax.set_title(title)
        ax.axis("off")
        if scale:
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------
def _default_block(name):
    """Drop trailing layer-part names: ``enc1_conv2 -> enc1``, ``x0_2_up -> x0_2``."""
    parts = name.split("_")
    while len(parts) > 1 and _PART_SUFFIX.match(parts[-1]):
        parts.pop()
    return "_".join(parts)


def _block_function(key):
    if key is None:
        return _default_block
    if callable(key):
        return key
    if isinstance(key, str):
        pattern = re.compile(key)

        def by_pattern(name):
            match = pattern.match(name)
            return match.group(0) if match else _default_block(name)

        return by_pattern
    raise ValueError("`key` must be None, a regular expression (str) or a function "
                     f"layer name -> block name. Received: key={key!r}")


def _shape(layer):
    shape = layer.output.shape
    return tuple(None if s is None else int(s) for s in shape)


def block_summary(model, *, key=None):
    """A model's layers grouped into blocks, in order of first appearance.

    Args:
        model: a Keras model (any; the builders' layer names make good blocks).
        key: how a layer name maps to its block: ``None`` drops trailing parts
            such as ``_conv1``, ``_bn2``, ``_relu1``, ``_pool``, ``_up``,
            ``_concat`` (``enc1_conv2 -> enc1``, ``x0_2_up -> x0_2``,
            ``hd3_from_e1_conv -> hd3_from_e1``); a regular expression takes
            its match at the start of the name (``r"hd\\d+|e\\d+"``: one row
            per UNet 3+ scale; names that do not match fall back to the
            default); or a function ``name -> block``.

    Returns:
        A list of dicts ``{"block", "layers", "output_shape", "params"}``:
        the number of layers, the output shape of the block's last layer
        (a pooling layer that ends an encoder level does not count, so the
        shape is the level's feature map) and the parameters (trainable and
        not, so the sum is ``model.count_params()``).
    """
    block_of = _block_function(key)
    rows = {}
    for layer in model.layers:
        name = block_of(layer.name)
        row = rows.setdefault(name, {"block": name, "layers": 0, "output_shape": None,
                                     "params": 0, "_pool_only": True})
        row["layers"] += 1
        row["params"] += int(layer.count_params())
        is_pool = type(layer).__name__ in _POOLING
        if not is_pool or row["_pool_only"]:
            row["output_shape"] = _shape(layer)
        row["_pool_only"] = row["_pool_only"] and is_pool
    out = []
    for row in rows.values():
        row.pop("_pool_only")
        out.append(row)
    return out


def block_table(model, *, key=None):
    """:func:`block_summary` as a markdown table with a total row."""
    from keras_unets.report.markdown import markdown_table

    rows = block_summary(model, key=key)
    body = [[r["block"], r["layers"], _fmt_shape(r["output_shape"]), r["params"]] for r in rows]
    body.append(["total", sum(r["layers"] for r in rows), "", int(model.count_params())])
    return markdown_table(["block", "layers", "output shape", "parameters"], body)


def _fmt_shape(shape):
    return "(" + ", ".join("B" if s is None and i == 0 else str(s) for i, s in enumerate(shape)) + ")"


def concat_inputs(model, node):
    """Names of the layers whose outputs meet in ``{node}_concat``, in order.

    For UNet 3+ (``node="hd3"``) these are the ``depth + 1`` full-scale skip
    units ``hd3_from_e1_relu`` .. ``hd3_from_hd5_relu`` (Huang et al. 2020,
    section 2.1: pooled shallower encoder maps, the same-scale encoder map,
    up-sampled deeper decoder maps); for UNet++ (``node="x0_2"``) the
    up-sampled X^{1,1} and the dense skips X^{0,0}, X^{0,1}.

    Raises:
        ValueError: no layer ``{node}_concat``; lists the nodes that have one.
    """
    name = f"{node}_concat"
    names = [layer.name for layer in model.layers]
    if name not in names:
        nodes = [n[: -len("_concat")] for n in names if n.endswith("_concat")]
        close = difflib.get_close_matches(str(node), nodes, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Model {model.name!r} has no layer {name!r}; nodes with a "
                         f"concatenation: {nodes}.{hint} Received: node={node!r}")
    inputs = model.get_layer(name).input
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    producers = {}
    for layer in model.layers:
        try:
            producers[id(layer.output)] = layer.name
        except (AttributeError, ValueError):  # layers without a single output
            continue
    return [producers[id(t)] for t in inputs]


def feature_maps(model, images, layer_names, *, reduce="mean", batch_size=1):
    """Activations of named layers of ``model`` for ``images``.

    Args:
        model: a Keras model taking ``(B, H, W, 1)`` float inputs ``image / 255``.
        images: ``uint8`` ``(H, W)`` or ``(N, H, W)``; sizes the model accepts.
        layer_names: a layer name or a list of them (e.g. from
            :func:`concat_inputs`).
        reduce: ``"mean"`` (mean over channels: ``(N, h, w)``), ``"max"`` or
            ``None`` (all channels: ``(N, h, w, C)``).
        batch_size: images per forward pass.

    Returns:
        dict ``{layer name: float32 array}`` in the order given.
    """
    import keras

    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if not names:
        raise ValueError("`layer_names` must name at least one layer. Received: []")
    known = [layer.name for layer in model.layers]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=3)
            raise ValueError(f"Model {model.name!r} has no layer {name!r}; close names: "
                             f"{close}. Received: layer_names={names}")
    if reduce not in ("mean", "max", None):
        raise ValueError(f"`reduce` must be 'mean', 'max' or None. Received: reduce={reduce!r}")
    x = _as_stack(images, "images")
    if x.dtype != np.uint8:
        raise ValueError(f"`images` must be uint8 (the model sees image / 255). "
                         f"Received: images.dtype={x.dtype}")
    x = (x.astype(np.float32) / 255.0)[..., None]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names],
                        name=f"{model.name}_features")
    outs = probe.predict(x, batch_size=int(batch_size), verbose=0)
    outs = [outs] if len(names) == 1 else list(outs)
    result = {}
    for name, out in zip(names, outs):
        out = np.asarray(out, dtype=np.float32)
        if reduce == "mean":
            out = out.mean(axis=-1)
        elif reduce == "max":
            out = out.max(axis=-1)
        result[name] = out
    return result


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------
def metrics_table(results, *, columns=METRICS_COLUMNS, digits=4):
    """:func:`keras_unets.metrics.evaluate` results as a markdown table, one row each.

    Args:
        results: ``{row name: evaluate() dict}`` (insertion order kept).
        columns: ``(key, title)`` pairs (default :data:`METRICS_COLUMNS`:
            pixel accuracy at the threshold, the threshold, Dice, IoU, V_rand,
            V_info).
        digits: decimals of the float cells.

    >>> print(metrics_table({"a": {"pixel_accuracy": 0.91234, "threshold": 87}},
    ...                     columns=[("pixel_accuracy", "acc"), ("threshold", "t")]), end="")
    | model | acc | t |
    | --- | --- | --- |
    | a | 0.9123 | 87 |
    """
    from keras_unets.report.markdown import fmt, markdown_table

    if not isinstance(results, dict) or not results:
        raise ValueError("`results` must be a non-empty dict {row name: evaluate() dict}. "
                         f"Received: {type(results).__name__}")
    rows = []
    for name, metrics in results.items():
        missing = [k for k, _ in columns if k not in metrics]
        if missing:
            raise ValueError(f"Row {name!r} lacks {missing}; pass keras_unets.metrics.evaluate "
                             f"results. Received keys: {sorted(metrics)}")
        rows.append([str(name)] + [fmt(metrics[k], digits) for k, _ in columns])
    return markdown_table(["model"] + [title for _, title in columns], rows)
