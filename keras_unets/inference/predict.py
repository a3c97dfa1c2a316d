"""Overlap-tile prediction of images of any size (U-Net paper, Fig. 2).

Ronneberger, Fischer and Brox (MICCAI 2015, Sec. 2 and Fig. 2): the image is
covered by tiles, the missing context at the border "is extrapolated by
mirroring the input image". The tiling maths lives in
:mod:`keras_unets.inference.tiling`; this module runs any Keras model
(valid-padding or same-padding, single output or deep supervision, grey or
colour input, one sigmoid channel or a K-class softmax) over the tiles in
batches and stitches the kept regions: :func:`predict_tiled` for one image
or a stack of one size, :func:`predict_images` for a list of images of any
sizes.

Decisions where the papers are silent:

* Tile steps are multiples of the network's total stride (``2 ** depth``),
  so every tile sees the same max-pooling grid as the whole image would;
  for a valid-padding model the stitched result then equals the whole-image
  result exactly.
* Same-padding models see zero padding at tile borders, so a ``margin``
  (default ``tile // 8``) of each predicted tile is discarded.
* Test-time augmentation averages the 8 elements of the dihedral group
  (4 rotations by 90 degrees, with and without a flip). The U-Net paper
  averaged "7 rotated versions of the input data" for ISBI (Sec. 3.1); 90-degree
  rotations and flips are exact on a pixel grid, so this uses all 8 instead.
  A K-class model's softmax probabilities (not its logits) are averaged, as
  are a binary model's sigmoid probabilities.
"""
import math

import numpy as np

from keras_unets.inference.tiling import (
    DIHEDRAL,
    dihedral,
    mirror_pad,
    tile_plan,
    transformed_shape,
    undo_dihedral,
)

__all__ = [
    "check_tile",
    "model_stride",
    "predict_images",
    "predict_tiled",
]


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
    """One output of a (possibly multi-output) prediction, float32 ``(B, H, W, K)``."""
    if isinstance(pred, dict):
        names = list(pred)
        if output is None:
            output = main_output(model, names)
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
            idx = names.index(main_output(model, names)) if names else -1
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
    if pred.ndim == 3:  # (B, H, W): one channel without its axis
        pred = pred[..., None]
    if pred.ndim != 4:
        raise ValueError(
            "predict_tiled expects an image output (batch, H, W, K). "
            f"Received: output shape={pred.shape}"
        )
    return pred


def main_output(model, names):
    """``models.main_output_name(model)`` if it is one of ``names``, else the last name."""
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


def _input_channels(model):
    """Channels of the model's image input (1 when the graph leaves them open)."""
    channels = tuple(model.inputs[0].shape)[-1]
    return 1 if channels is None else int(channels)


def _output_size(model, tile, output):
    """Run one zero tile; return the output size or raise if ``tile`` fails."""
    return _output_shapes(model, tile, [output])[output][0]


def _output_shapes(model, tile, outputs):
    """``{output: (size, channels)}`` of several outputs from one zero tile's forward pass."""
    raw = _run(model, np.zeros((1, tile, tile, _input_channels(model)), dtype=np.float32))
    shapes = {}
    for output in outputs:
        out = _select_output(raw, model, output)
        if out.shape[1] != out.shape[2]:
            raise ValueError(f"Non-square output {out.shape} for a square tile {tile}")
        shapes[output] = (int(out.shape[1]), int(out.shape[3]))
    return shapes


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
        name = main_output(model, names)
        out = model.outputs[names.index(name)]
        layer = out._keras_history[0]
    except Exception:  # noqa: BLE001
        return False
    act = getattr(layer, "activation", None)
    if act is None:
        return False
    return getattr(act, "__name__", "") == "linear"


def sigmoid(x):
    """The logistic function of a numpy array, without overflow."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _softmax(x):
    """Softmax over the last axis (the K classes)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _probabilities(logits):
    """Sigmoid of one channel, softmax over K >= 2 channels."""
    return sigmoid(logits) if logits.shape[-1] == 1 else _softmax(logits)


# ---------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------
def _as_batch(images, channels):
    """``images`` as ``(N, H, W, C)`` uint8, and whether it was one image / grey.

    A 3D array is one ``(H, W, C)`` image when its last axis has the
    model's ``channels > 1``, else a grey stack ``(N, H, W)``.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(
            "predict_tiled expects uint8 images with values 0-255 (the data "
            "layer's convention). Received: dtype="
            f"{arr.dtype}; convert e.g. with np.clip(x * 255, 0, 255).astype(np.uint8)"
        )
    single = arr.ndim == 2 or (arr.ndim == 3 and channels > 1 and arr.shape[-1] == channels)
    if arr.ndim == 2 or (arr.ndim == 3 and not single):
        arr = arr[..., None]
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != channels:
        want = ("a 2D image (H, W) or a volume (N, H, W) (or (N, H, W, 1))" if channels == 1
                else f"an image (H, W, {channels}) or a stack (N, H, W, {channels})")
        raise ValueError(
            f"predict_tiled expects {want} for this {channels}-channel model. "
            f"Received: shape={np.asarray(images).shape}"
            + (f"; the images have {arr.shape[-1]} channels: convert them (grey <-> RGB) or use "
               f"a model built with input_channels={arr.shape[-1]}" if arr.ndim == 4 else "")
        )
    return arr, single


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
        model: a Keras model taking ``(B, T, T, C)`` float inputs in [0, 1]
            (``image / 255``) and predicting ``P(foreground)`` (one channel)
            or K class probabilities (K channels). Valid-padding models
            (output smaller than input) and same-padding models both work.
        images: ``uint8``, any height and width: for a grey model ``(H, W)``
            or ``(N, H, W)`` (or ``(N, H, W, 1)``); for a C-channel model
            ``(H, W, C)`` or ``(N, H, W, C)``. Images smaller than a tile are
            mirror-padded (:func:`~keras_unets.inference.tiling.mirror_pad`).
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
        from_logits: the output is logits: apply a sigmoid (one channel) or
            a softmax over the K channels before stitching and averaging.
            Default: auto, True if the output layer's activation is linear.
        align: tile steps are multiples of this; default the model's stride.
        progress: tqdm progress bar over tile batches (default: when there
            are more than 8 batches).

    Returns:
        ``float32`` probabilities: for a one-channel output the images'
        shape without their channel axis (``(H, W)`` or ``(N, H, W)``); for
        K output channels the same with a last axis K (``(H, W, K)`` or
        ``(N, H, W, K)``). For a list of outputs, ``{output: probabilities}``
        in the order given.
    """
    channels = _input_channels(model)
    volume, single = _as_batch(images, channels)
    multi = isinstance(output, (list, tuple))
    outputs = list(output) if multi else [output]
    if not outputs:
        raise ValueError("output=[] names no output; pass a name, an index, a "
                         "list of them, or None for the main output.")
    output = outputs[0]
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if tile is None:
        tile = _whole_image_tile(model, volume.shape[1:3], output)
        if tile is not None and margin is None:
            margin = 0  # one tile covers the image: only mirror padding
        else:
            tile = _default_tile(model, output)
        model_out = _output_size(model, tile, output)
    else:
        model_out = check_tile(model, tile, output=output)
    tile = int(tile)
    shapes = _output_shapes(model, tile, outputs)
    if multi and len({size for size, _ in shapes.values()}) > 1:
        raise ValueError(
            f"Outputs of different sizes cannot share tiles: "
            f"{ {name: size for name, (size, _) in shapes.items()} } for a "
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
    depth = [shapes[name][1] for name in outputs]  # output channels K
    results = {o: np.zeros(volume.shape[:3] + (depth[o],), dtype=np.float32)
               for o in range(len(outputs))}
    # Gather every tile of every image and transform, then run them batched.
    jobs = []  # (image index, transform index, plan, padded image)
    for i, img in enumerate(volume):
        for t, transform in enumerate(transforms):
            timg = dihedral(img, transform)
            plan = tile_plan(
                timg.shape[:2], tile=tile, out_size=out_size, context=context, align=align
            )
            jobs.append((i, t, plan, mirror_pad(timg, plan.pad)))
    index = [(j, n) for j, job in enumerate(jobs) for n in range(len(job[2].tiles))]
    n_batches = math.ceil(len(index) / batch_size)
    if progress is None:
        progress = n_batches > 8
    outs = {(o, j): np.zeros(transformed_shape(volume.shape[1:3], transforms[jobs[j][1]])
                             + (depth[o],), np.float32)
            for o in range(len(outputs)) for j in range(len(jobs))}
    batches = range(n_batches)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="predict tiles", unit="batch")
    for b in batches:
        chunk = index[b * batch_size:(b + 1) * batch_size]
        x = np.empty((len(chunk), tile, tile, channels), dtype=np.float32)
        for n, (j, ti) in enumerate(chunk):
            y0, x0 = jobs[j][2].tiles[ti]
            x[n] = jobs[j][3][y0:y0 + tile, x0:x0 + tile]
        x /= 255.0
        raw = _run(model, x)
        for o, name in enumerate(outputs):
            pred = _select_output(raw, model, name)
            if from_logits:
                pred = _probabilities(pred)
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
        results[o][i] += undo_dihedral(out, transforms[t])
    for result in results.values():
        result /= len(transforms)
    results = {o: r[..., 0] if r.shape[-1] == 1 else r for o, r in results.items()}
    if single:
        results = {o: r[0] for o, r in results.items()}
    if multi:
        return {name: results[o] for o, name in enumerate(outputs)}
    return results[0]


def predict_images(model, images, **kwargs):
    """Predict a list of images of any sizes; return a list of probability maps.

    Each image is predicted at its own size with :func:`predict_tiled`
    (images of one shape share their forward passes; images smaller than a
    tile are mirror-padded), so the results are those of ``predict_tiled``
    on each image alone.

    Args:
        model: as :func:`predict_tiled`.
        images: a list of ``uint8`` ``(H, W)`` (grey) or ``(H, W, C)``
            images (or an ``(N, H, W[, C])`` stack, taken image by image).
        **kwargs: :func:`predict_tiled`'s options (``tile``, ``tta``, ...).

    Returns:
        A list, in the order of ``images``: ``float32 (H, W)`` for a
        one-channel output, ``(H, W, K)`` for K output channels (a dict per
        image for a list of outputs).
    """
    images = [np.asarray(image) for image in images]
    if not images:
        raise ValueError("predict_images needs at least one image. Received: an empty list")
    channels = _input_channels(model)
    groups = {}  # shape -> indices, in order of first appearance
    for i, image in enumerate(images):
        found = 1 if image.ndim == 2 else (image.shape[-1] if image.ndim == 3 else None)
        if found != channels:
            want = "(H, W) (grey)" if channels == 1 else f"(H, W, {channels})"
            raise ValueError(
                f"Image {i} must be {want} for this {channels}-channel model. "
                f"Received: shape={image.shape}; convert the images (grey <-> RGB) or use a "
                "model built for their channels (input_channels)."
            )
        if image.ndim == 3 and channels == 1:
            image = images[i] = image[..., 0]
        groups.setdefault(image.shape, []).append(i)
    out = [None] * len(images)
    for indices in groups.values():
        stack = np.stack([images[i] for i in indices])
        pred = predict_tiled(model, stack, **kwargs)
        for n, i in enumerate(indices):
            out[i] = ({name: p[n] for name, p in pred.items()} if isinstance(pred, dict)
                      else pred[n])
    return out
