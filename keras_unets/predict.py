"""Overlap-tile prediction of arbitrarily large images (U-Net paper, Fig. 2).

Ronneberger, Fischer and Brox (MICCAI 2015, Sec. 2 and Fig. 2): "To predict
the pixels in the border region of the image, the missing context is
extrapolated by mirroring the input image. This tiling strategy is important
to apply the network to large images". A valid-padding U-Net sees a
``T x T`` input tile and predicts the centre ``O x O`` of it (572 -> 388 for
the paper's network); the image is covered by output tiles and each input
tile carries ``(T - O) / 2`` pixels of context on every side.

This module has two layers:

* pure tiling maths, numpy only, tested without a model:
  :func:`tile_starts`, :func:`tile_bounds`, :func:`tile_plan`;
* the predictor :func:`predict_tiled`, which runs any Keras model
  (valid-padding or same-padding, single output or deep supervision) over
  the tiles in batches and stitches the kept regions.

Decisions where the papers are silent:

* Mirror extrapolation is ``np.pad(mode="reflect")`` (the edge pixel is not
  repeated), which is the mirroring drawn in the paper's Fig. 2 and equals
  ``scipy.ndimage`` mode ``"mirror"``.
* Tile steps are multiples of the network's total stride (``2 ** depth``),
  so every tile sees the same max-pooling grid as the whole image would;
  for a valid-padding model the stitched result then equals the whole-image
  result exactly. Overlaps between neighbouring tiles are split at their
  midpoint: every output pixel comes from exactly one tile.
* Same-padding models see zero padding at tile borders, so a ``margin``
  (default ``tile // 8``) of each predicted tile is discarded.
* Test-time augmentation averages the 8 elements of the dihedral group
  (4 rotations by 90 degrees, with and without a flip). The U-Net paper
  averaged "7 rotated versions of the input data" for ISBI (Sec. 3.1); 90-degree
  rotations and flips are exact on a pixel grid, so this uses all 8 instead.
"""
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TilePlan",
    "tile_starts",
    "tile_bounds",
    "tile_plan",
    "model_stride",
    "check_tile",
    "predict_tiled",
    "predict_padded",
    "DIHEDRAL",
]

# The 8 elements of the dihedral group D4 as (k rotations by 90 deg, flip).
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


# ---------------------------------------------------------------------------
# Pure tiling maths
# ---------------------------------------------------------------------------
def tile_starts(length, out_size, *, align=1):
    """Start positions (in output coordinates) of tiles along one axis.

    Tiles of ``out_size`` valid output pixels are placed at multiples of
    ``step = (out_size // align) * align`` until they reach ``length``. The
    last tile may extend past the image end (the input is padded there).

    Args:
        length: image size along the axis (>= 1).
        out_size: valid output pixels per tile (>= 1).
        align: the step is a multiple of this (the model's total stride).

    Returns:
        ``int64`` array of starts, ``0 = starts[0] < ... < length``.

    >>> tile_starts(10, 4).tolist()
    [0, 4, 8]
    >>> tile_starts(10, 6, align=4).tolist()  # step 4; [4, 10) reaches the end
    [0, 4]
    """
    length, out_size, align = int(length), int(out_size), int(align)
    if length < 1:
        raise ValueError(f"length must be >= 1. Received: length={length}")
    if align < 1:
        raise ValueError(f"align must be >= 1. Received: align={align}")
    step = (out_size // align) * align
    if step < 1:
        raise ValueError(
            f"The output tile ({out_size} px) is smaller than the model's stride "
            f"({align} px); use a larger tile. Received: out_size={out_size}, "
            f"align={align}"
        )
    if length <= out_size:
        return np.zeros(1, dtype=np.int64)
    n = 1 + math.ceil((length - out_size) / step)
    return np.arange(n, dtype=np.int64) * step


def tile_bounds(starts, out_size, length):
    """The part of each tile's valid output that is kept: ``[(lo, hi), ...]``.

    Overlaps of neighbouring tiles are split at their midpoint, so the kept
    intervals partition ``[0, length)`` and each lies inside its tile's valid
    output ``[start, start + out_size)``.

    >>> tile_bounds([0, 4], 6, 10)  # tiles [0, 6) and [4, 10) split at 5
    [(0, 5), (5, 10)]
    """
    starts = [int(s) for s in starts]
    cuts = [0]
    for prev, nxt in zip(starts[:-1], starts[1:]):
        cuts.append((nxt + prev + out_size) // 2)
    cuts.append(int(length))
    return [(cuts[i], cuts[i + 1]) for i in range(len(starts))]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one 2D image go.

    Attributes:
        pad: ``((top, bottom), (left, right))`` mirror padding of the image.
        tiles: list of ``(y0, x0)``: top-left corner of each input tile in the
            padded image; the tile is ``tile x tile``.
        keep: list of ``((ylo, yhi), (xlo, xhi))`` per tile: image pixels the
            tile provides; they partition the image.
        tile: input tile size.
        out_size: valid output size per tile.
        context: pixels of input context before the valid output.
    """

    pad: tuple
    tiles: list
    keep: list
    tile: int
    out_size: int
    context: int


def tile_plan(shape, *, tile, out_size, context=None, align=1):
    """Plan overlap-tile prediction of an ``(H, W)`` image.

    Args:
        shape: ``(H, W)``.
        tile: input tile size ``T`` (square tiles).
        out_size: valid output size ``O <= T`` per tile.
        context: input pixels before the valid output (default ``(T - O) // 2``).
        align: tile steps are multiples of this.

    Returns:
        :class:`TilePlan`. Tile ``i`` reads ``padded[y0:y0+T, x0:x0+T]`` and its
        valid output pixel ``(u, v)`` is image pixel ``(y0 + u, x0 + v)``.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W). Received: shape={shape}")
    tile, out_size = int(tile), int(out_size)
    if not 1 <= out_size <= tile:
        raise ValueError(
            f"Need 1 <= out_size <= tile. Received: out_size={out_size}, tile={tile}"
        )
    context = (tile - out_size) // 2 if context is None else int(context)
    after = tile - out_size - context
    if context < 0 or after < 0:
        raise ValueError(
            f"context must be in [0, tile - out_size]. Received: context={context}"
        )
    per_axis = []
    pad = []
    for length in shape:
        starts = tile_starts(length, out_size, align=align)
        bounds = tile_bounds(starts, out_size, length)
        extra = max(0, int(starts[-1]) + out_size - int(length))
        pad.append((context, after + extra))
        per_axis.append((starts, bounds))
    (ys, ykeep), (xs, xkeep) = per_axis
    tiles, keep = [], []
    for y0, yk in zip(ys, ykeep):
        for x0, xk in zip(xs, xkeep):
            tiles.append((int(y0), int(x0)))
            keep.append((yk, xk))
    return TilePlan(tuple(pad), tiles, keep, tile, out_size, context)


def _mirror_pad(image, pad):
    """``np.pad(mode="reflect")``; numpy reflects repeatedly for large pads."""
    if image.shape[0] == 1 or image.shape[1] == 1:
        return np.pad(image, pad, mode="symmetric")
    return np.pad(image, pad, mode="reflect")


# ---------------------------------------------------------------------------
# Model introspection
# ---------------------------------------------------------------------------
def model_stride(model, default=16):
    """Total down-sampling factor of a fully convolutional Keras model.

    Walks the functional graph: pooling layers and strided convolutions
    multiply the scale, up-sampling layers and transposed convolutions divide
    it; the largest scale reached is the stride (``2 ** depth`` for a U-Net).
    Falls back to ``default`` for graphs it cannot walk.
    """
    try:
        scale = {}
        for t in model.inputs:
            scale[id(t)] = 1.0
        best = 1.0
        for op in model.operations:
            try:
                inputs = op.input
            except (AttributeError, ValueError):
                continue
            ins = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            s = max((scale.get(id(t), 1.0) for t in ins), default=1.0)
            cls = type(op).__name__
            if "Pooling2D" in cls and "Global" not in cls:
                s *= float(_pair(op.strides or op.pool_size)[0])
            elif cls == "Conv2D" or cls == "SeparableConv2D" or cls == "DepthwiseConv2D":
                s *= float(_pair(op.strides)[0])
            elif cls.endswith("UpSampling2D"):
                s /= float(_pair(op.size)[0])
            elif cls == "Conv2DTranspose":
                s /= float(_pair(op.strides)[0])
            outputs = op.output
            outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for t in outs:
                scale[id(t)] = s
            best = max(best, s)
        return int(round(best))
    except Exception:  # noqa: BLE001 - introspection is best effort
        return int(default)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _fixed_input_size(model):
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise ValueError(
            "predict_tiled needs a model with one (batch, H, W, C) image input. "
            f"Received: input_shape={shape}"
        )
    if shape[1] is not None and shape[2] is not None:
        if shape[1] != shape[2]:
            raise ValueError(
                f"Only square tiles are supported. Received: input_shape={shape}"
            )
        return int(shape[1])
    return None


def _select_output(pred, model, output):
    """Pick one output of a (possibly multi-output) prediction, as float32."""
    if isinstance(pred, dict):
        names = list(pred)
        if output is None:
            output = _main_output_name(model, names)
        if isinstance(output, int):
            output = names[output]
        if output not in pred:
            raise ValueError(
                f"Unknown output {output!r}; the model has outputs {names}."
            )
        pred = pred[output]
    elif isinstance(pred, (list, tuple)):
        names = list(getattr(model, "output_names", []) or [])
        if output is None:
            idx = names.index(_main_output_name(model, names)) if names else -1
        elif isinstance(output, str):
            if output not in names:
                raise ValueError(
                    f"Unknown output {output!r}; the model has outputs {names}."
                )
            idx = names.index(output)
        else:
            idx = int(output)
        pred = pred[idx]
    pred = np.asarray(pred, dtype=np.float32)
    if pred.ndim == 4:
        if pred.shape[-1] != 1:
            raise ValueError(
                "predict_tiled expects a single-channel probability output. "
                f"Received: output shape={pred.shape}"
            )
        pred = pred[..., 0]
    return pred


def _main_output_name(model, names):
    try:
        from keras_unets.models import main_output_name

        name = main_output_name(model)
        if name in names:
            return name
    except Exception:  # noqa: BLE001 - models module optional here
        pass
    return names[-1]


def _run(model, x):
    """Forward pass of one batch without a progress bar.

    ``predict_on_batch`` under a ``tf.distribute.MirroredStrategy`` with
    several replicas returns every sample once per replica (Keras 3.15), so
    distributed models go through ``predict`` instead.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) > 1:
        return model.predict(x, batch_size=len(x), verbose=0)
    return model.predict_on_batch(x)


def _output_size(model, tile, output):
    """Run one zero tile; return the output size or raise if ``tile`` fails."""
    return _output_sizes(model, tile, [output])[output]


def _output_sizes(model, tile, outputs):
    """``{output: size}`` of several outputs from one zero tile's forward pass."""
    raw = _run(model, np.zeros((1, tile, tile, 1), dtype=np.float32))
    sizes = {}
    for output in outputs:
        out = _select_output(raw, model, output)
        if out.shape[1] != out.shape[2]:
            raise ValueError(f"Non-square output {out.shape} for a square tile {tile}")
        sizes[output] = int(out.shape[1])
    return sizes


def _tile_works(model, tile, output):
    """Output size for a ``tile`` the model takes exactly, else None.

    A valid-padding model whose poolings floor odd sizes (and whose skips
    are cropped dynamically) runs on any size, but only sizes where every
    pooling divides exactly keep the tiles on the model's grid: those are
    the smallest of each run of sizes with the same output size, so the
    size one pixel smaller must give a smaller output.
    """
    try:
        size = _output_size(model, tile, output)
    except Exception:  # noqa: BLE001 - any failure means the size does not work
        return None
    if size < 1:
        return None
    if size < tile and tile > 1 and _fixed_input_size(model) is None:
        try:
            smaller = _output_size(model, tile - 1, output)
        except Exception:  # noqa: BLE001
            smaller = -1
        if smaller == size:
            return None
    return size


def check_tile(model, tile, *, output=None, search=None):
    """Check that ``model`` accepts ``tile x tile`` inputs; return the output size.

    Raises:
        ValueError: naming the nearest smaller and larger tile sizes that work.
    """
    tile = int(tile)
    fixed = _fixed_input_size(model)
    if fixed is not None and tile != fixed:
        raise ValueError(
            f"The model has a fixed input size {fixed}; use tile={fixed}. "
            f"Received: tile={tile}"
        )
    size = _tile_works(model, tile, output) if tile >= 1 else None
    if size is not None and size >= 1:
        return size
    stride = model_stride(model)
    search = search or 2 * stride + 2
    below = above = None
    for d in range(1, search + 1):
        if below is None and tile - d >= 1 and _tile_works(model, tile - d, output):
            below = tile - d
        if above is None and _tile_works(model, tile + d, output):
            above = tile + d
        if below is not None and above is not None:
            break
    options = [str(v) for v in (below, above) if v is not None]
    hint = (
        f"the nearest sizes that work are {' and '.join(options)}"
        if options
        else f"no size within {search} px works"
    )
    raise ValueError(
        f"The model cannot take {tile}x{tile} tiles; {hint}. Received: tile={tile}"
    )


def _whole_image_tile(model, shape, output, limit=1024):
    """One same-padding tile covering the image (stride multiple), or None."""
    if _fixed_input_size(model) is not None:
        return None
    stride = model_stride(model)
    size = -(-max(shape) // stride) * stride
    if size > limit:
        return None
    return size if _tile_works(model, size, output) == size else None


def _default_tile(model, output):
    """The fixed input size, else the accepted size nearest to 256 px."""
    fixed = _fixed_input_size(model)
    if fixed is not None:
        return fixed
    stride = model_stride(model)
    t = max(stride, (256 // stride) * stride)
    for d in range(0, 4 * stride + 1):
        for cand in (t + d, t - d):
            if cand >= 1 and _tile_works(model, cand, output):
                return cand
    raise ValueError(f"Could not find a tile size near {t} that the model accepts.")


def _is_logits_model(model):
    """True when the main output layer applies no activation (logits)."""
    try:
        names = list(model.output_names)
        name = _main_output_name(model, names)
        out = model.outputs[names.index(name)]
        layer = out._keras_history[0]
    except Exception:  # noqa: BLE001
        return False
    act = getattr(layer, "activation", None)
    if act is None:
        return False
    return getattr(act, "__name__", "") == "linear"


def _sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


# ---------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------
def _as_volume(images):
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(
            "predict_tiled expects uint8 images with values 0-255 (the data "
            "layer's convention). Received: dtype="
            f"{arr.dtype}; convert e.g. with np.clip(x * 255, 0, 255).astype(np.uint8)"
        )
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim == 3:
        return arr, False
    raise ValueError(
        "predict_tiled expects a 2D image (H, W) or a volume (N, H, W). "
        f"Received: shape={arr.shape}"
    )


def predict_tiled(
    model,
    images,
    *,
    tile=None,
    batch_size=4,
    tta=False,
    margin=None,
    output=None,
    from_logits=None,
    align=None,
    progress=None,
):
    """Overlap-tile prediction of 2D images or volumes (U-Net paper, Fig. 2).

    Args:
        model: a Keras model taking ``(B, T, T, 1)`` float inputs in [0, 1]
            (``image / 255``) and predicting ``P(cell)``. Valid-padding models
            (output smaller than input) and same-padding models both work.
        images: ``uint8`` ``(H, W)`` or ``(N, H, W)``, any size.
        tile: input tile size. Default: the model's fixed input size; for a
            same-padding model and images up to 1024 px, one tile covering
            the image (no margin); else an accepted size near 256. Checked
            with one forward pass; a size that fails raises naming the
            nearest sizes that work.
        batch_size: tiles per forward pass.
        tta: average the 8 flips/90-degree rotations (dihedral group).
        margin: output pixels discarded on each tile side. Default
            ``tile // 8`` for same-padding models, 0 for valid-padding models.
        output: which output of a multi-output model (name or index);
            default the main output (``keras_unets.models.main_output_name``).
            A list or tuple of outputs predicts them all from the same
            forward passes and returns a dict (they must have one size,
            e.g. the deep-supervision heads).
        from_logits: apply a sigmoid to the output. Default: auto, True if the
            output layer's activation is linear.
        align: tile steps are multiples of this; default the model's stride.
        progress: tqdm progress bar over tile batches (default: when there
            are more than 8 batches).

    Returns:
        ``float32`` probabilities with the shape of ``images``; for a list of
        outputs, ``{output: probabilities}`` in the order given.
    """
    volume, squeeze = _as_volume(images)
    multi = isinstance(output, (list, tuple))
    outputs = list(output) if multi else [output]
    if not outputs:
        raise ValueError("output=[] names no output; pass a name, an index, a "
                         "list of them, or None for the main output.")
    output = outputs[0]
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if tile is None:
        tile = _whole_image_tile(model, volume.shape[1:], output)
        if tile is not None and margin is None:
            margin = 0  # one tile covers the image: only mirror padding
        else:
            tile = _default_tile(model, output)
        model_out = _output_size(model, tile, output)
    else:
        model_out = check_tile(model, tile, output=output)
    tile = int(tile)
    if multi:
        sizes = _output_sizes(model, tile, outputs)
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"Outputs of different sizes cannot share tiles: {sizes} for a "
                f"{tile} px tile; predict them one at a time.")
    same = model_out == tile
    if margin is None:
        margin = tile // 8 if same else 0
    margin = int(margin)
    out_size = model_out - 2 * margin
    if margin < 0 or out_size < 1:
        raise ValueError(
            f"margin must be in [0, {(model_out - 1) // 2}] for a {model_out} px "
            f"model output. Received: margin={margin}"
        )
    if model_out > tile:
        raise ValueError(f"Model output {model_out} is larger than its input {tile}.")
    context = (tile - model_out) // 2 + margin
    if align is None:
        align = model_stride(model)
    if from_logits is None:
        from_logits = _is_logits_model(model)

    transforms = DIHEDRAL if tta else ((0, False),)
    results = {o: np.zeros(volume.shape, dtype=np.float32) for o in range(len(outputs))}
    # Gather every tile of every slice and transform, then run them batched.
    jobs = []  # (slice index, transform index, plan, padded image)
    for i, img in enumerate(volume):
        for t, (k, flip) in enumerate(transforms):
            timg = np.rot90(img[:, ::-1] if flip else img, k)
            plan = tile_plan(
                timg.shape, tile=tile, out_size=out_size, context=context, align=align
            )
            jobs.append((i, t, plan, _mirror_pad(timg, plan.pad)))
    index = [(j, n) for j, job in enumerate(jobs) for n in range(len(job[2].tiles))]
    n_batches = math.ceil(len(index) / batch_size)
    if progress is None:
        progress = n_batches > 8
    outs = {(o, j): np.zeros(_transformed_shape(volume.shape[1:], transforms[jobs[j][1]]),
                             np.float32)
            for o in range(len(outputs)) for j in range(len(jobs))}
    batches = range(n_batches)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="predict tiles", unit="batch")
    for b in batches:
        chunk = index[b * batch_size:(b + 1) * batch_size]
        x = np.empty((len(chunk), tile, tile, 1), dtype=np.float32)
        for n, (j, ti) in enumerate(chunk):
            y0, x0 = jobs[j][2].tiles[ti]
            x[n, :, :, 0] = jobs[j][3][y0:y0 + tile, x0:x0 + tile]
        x /= 255.0
        raw = _run(model, x)
        for o, name in enumerate(outputs):
            pred = _select_output(raw, model, name)
            if from_logits:
                pred = _sigmoid(pred)
            for n, (j, ti) in enumerate(chunk):
                plan = jobs[j][2]
                y0, x0 = plan.tiles[ti]
                (ylo, yhi), (xlo, xhi) = plan.keep[ti]
                # valid output pixel (u, v) of this tile is image pixel (y0+u, x0+v)
                outs[o, j][ylo:yhi, xlo:xhi] = pred[
                    n, margin + ylo - y0:margin + yhi - y0, margin + xlo - x0:margin + xhi - x0
                ]
    for (o, j), out in outs.items():
        i, t, _, _ = jobs[j]
        k, flip = transforms[t]
        back = np.rot90(out, -k)
        if flip:
            back = back[:, ::-1]
        results[o][i] += back
    for result in results.values():
        result /= len(transforms)
    if squeeze:
        results = {o: r[0] for o, r in results.items()}
    if multi:
        return {name: results[o] for o, name in enumerate(outputs)}
    return results[0]


def _transformed_shape(shape, transform):
    k, _ = transform
    return tuple(shape) if k % 2 == 0 else (shape[1], shape[0])


def predict_padded(model, image, *, output=None, from_logits=False):
    """Whole-image prediction of one image of any size and channels, every output channel.

    For same-padding (fully convolutional) models of any input channels and
    any output channels (a K-class softmax as well as one sigmoid channel):
    the image is mirror-padded (``np.pad(mode="reflect")``, centred) to a
    multiple of the model's stride (:func:`model_stride`), run once, and
    cropped back. :func:`predict_tiled` is the overlap-tile predictor for
    single-channel images and outputs and for valid-padding models.

    Args:
        model: a Keras model taking ``(1, H, W, C)`` float inputs ``image / 255``.
        image: ``uint8`` ``(H, W)`` (grey) or ``(H, W, C)``.
        output: which output of a multi-output model (name or index);
            default the main output (``keras_unets.models.main_output_name``).
        from_logits: the output is logits: apply a softmax over the channels
            (a sigmoid for one channel).

    Returns:
        ``float32 (H, W, K)`` probabilities (K = the output's channels).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            "predict_padded expects one uint8 image (H, W) or (H, W, C). "
            f"Received: dtype={image.dtype}, shape={image.shape}"
        )
    if image.ndim == 2:
        image = image[..., None]
    if _fixed_input_size(model) is not None:
        raise ValueError(
            f"The model has a fixed input size {_fixed_input_size(model)}; use predict_tiled for it."
        )
    stride = model_stride(model)
    h, w = image.shape[:2]
    ph, pw = -(-h // stride) * stride - h, -(-w // stride) * stride - w
    pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    mode = "symmetric" if min(h, w) == 1 else "reflect"
    x = np.pad(image, pad, mode=mode).astype(np.float32)[None] / 255.0
    raw = _run(model, x)
    if isinstance(raw, dict):
        names = list(raw)
        key = _main_output_name(model, names) if output is None else (names[output] if isinstance(output, int) else output)
        if key not in raw:
            raise ValueError(f"Unknown output {output!r}; the model has outputs {names}.")
        raw = raw[key]
    elif isinstance(raw, (list, tuple)):
        names = list(getattr(model, "output_names", []) or [])
        if output is None:
            index = names.index(_main_output_name(model, names)) if names else -1
        else:
            index = names.index(output) if isinstance(output, str) else int(output)
        raw = raw[index]
    pred = np.asarray(raw, np.float32)
    if pred.ndim != 4 or pred.shape[1:3] != x.shape[1:3]:
        raise ValueError(
            f"The model maps a {x.shape[1]}x{x.shape[2]} input to an output of shape {pred.shape[1:]}; "
            "predict_padded needs a same-padding model (output the input's size). Use "
            "predict_tiled for valid-padding models."
        )
    pred = pred[0, pad[0][0]:pad[0][0] + h, pad[1][0]:pad[1][0] + w]
    if from_logits:
        if pred.shape[-1] == 1:
            pred = _sigmoid(pred)
        else:
            pred = np.exp(pred - pred.max(axis=-1, keepdims=True))
            pred /= pred.sum(axis=-1, keepdims=True)
    return pred
