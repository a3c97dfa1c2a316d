"""Download and check the ISBI 2012 data.

The three TIFF volumes of the ISBI 2012 challenge (Arganda-Carreras et al.
2015, Front. Neuroanat. 9:142; data from Cardona et al. 2010, PLoS Biol
8(10):e1000502) are fetched from public GitHub mirrors that carry the
official files byte for byte. Each file is verified by its git blob id
(SHA-1 of ``b"blob <size>\\0" + bytes``, what ``git hash-object`` prints and
what GitHub's tree listing shows), so a mirror that serves anything else is
rejected and the next one is tried. Downloads go to a temporary file in the
destination folder and are moved into place only after verification: an
interrupted or corrupt download leaves nothing half-written.

The data's terms (stated by its author): use for generating or testing
non-commercial image segmentation software, citing the two papers above.
"""
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from keras_unets.data.isbi2012 import (
    ENV_VAR,
    PIXEL_SHA256,
    PNG_DIRS,
    VOLUME_FILES,
    check_labels,
    default_data_dir,
    detect_layout,
)
from keras_unets.data.stacks import DataFormatError, DataNotFoundError, pixel_sha256, read_stack
from keras_unets.io import atomic_write

__all__ = [
    "MIRRORS",
    "OFFICIAL_BLOB_IDS",
    "MIRRORS_ENV_VAR",
    "DownloadError",
    "git_blob_id",
    "download_isbi2012",
    "check_data_dir",
    "manual_instructions",
]

#: Base URLs of public mirrors of the official TIFFs, tried in order. Both
#: repositories hold the three files with the blob ids below (checked in
#: their git trees, branch ``master``).
MIRRORS = (
    "https://raw.githubusercontent.com/zhixuhao/unet/master/data/membrane/",
    "https://raw.githubusercontent.com/alexklibisz/isbi-2012/master/data/",
)
#: Environment variable with mirror base URLs (comma or space separated) that
#: replaces :data:`MIRRORS` when ``download_isbi2012(mirrors=None)``.
MIRRORS_ENV_VAR = "ISBI2012_MIRRORS"

#: git blob ids of the official TIFF files (data README).
OFFICIAL_BLOB_IDS = {
    "train-volume.tif": "358e48bed4f747c20da43251eb7138727d98cec3",
    "train-labels.tif": "74ab9858c0be80842c94c41c6fb980aab49e9558",
    "test-volume.tif": "3e3612ff0786d278b4d2712a29383c7ca58288ad",
}

_CHUNK = 1 << 16
#: A download larger than this is not an ISBI volume (each is ~7.9 MB).
_MAX_BYTES = 64 << 20


class DownloadError(RuntimeError):
    """No mirror delivered a verified copy of a file."""


def git_blob_id(data_or_path):
    """git blob id of bytes or a file: SHA-1 of ``b"blob <size>\\0" + bytes``.

    >>> git_blob_id(b"hello\\n")  # same as `echo hello | git hash-object --stdin`
    'ce013625030ba8dba906f756967f9e9ca394464a'
    """
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        data = bytes(data_or_path)
        digest = hashlib.sha1(b"blob %d\0" % len(data))
        digest.update(data)
        return digest.hexdigest()
    path = Path(data_or_path)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manual_instructions(dest, mirrors=MIRRORS, files=tuple(VOLUME_FILES.values())):
    """Where to download the files by hand and where to put them."""
    dest = Path(dest)
    lines = ["To install the data by hand, download:"]
    for name in files:
        urls = " or ".join(_join(m, name) for m in mirrors) or "(no mirror)"
        lines.append(f"    {name}: {urls}")
    lines.append(f"and put them in {dest}{os.sep} as:")
    lines += [f"    {dest / name}" for name in files]
    lines.append(
        "Then run `keras-unets data check "
        f"{dest}` (or point {ENV_VAR} at another folder that holds them)."
    )
    return "\n".join(lines)


def _join(mirror, name):
    return mirror.rstrip("/") + "/" + urllib.parse.quote(name)


def _mirrors_from(mirrors):
    if mirrors is None:
        env = os.environ.get(MIRRORS_ENV_VAR, "").replace(",", " ").split()
        mirrors = tuple(env) if env else MIRRORS
    elif isinstance(mirrors, str):
        mirrors = (mirrors,)
    mirrors = tuple(mirrors)
    if not mirrors:
        raise ValueError(f"Give at least one mirror URL. Received: mirrors={mirrors!r}")
    for mirror in mirrors:
        scheme = urllib.parse.urlsplit(mirror).scheme
        if scheme not in ("http", "https"):
            raise ValueError(
                "Mirrors must be http:// or https:// base URLs. "
                f"Received: mirror={mirror!r}"
            )
    return mirrors


def _fetch(url, target, expected_id, *, timeout, progress):
    """Download ``url`` into ``target`` atomically if its blob id matches."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if length is not None and length > _MAX_BYTES:
            raise DownloadError(f"{url}: {length} bytes is too large for an ISBI volume")
        received = 0
        bar = tqdm(
            total=length,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=target.name,
            disable=not progress,
            leave=False,
        )
        with bar, atomic_write(target, "w+b") as fh:
            while True:  # bounded: ends at EOF or after _MAX_BYTES
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > _MAX_BYTES:
                    raise DownloadError(f"{url}: more than {_MAX_BYTES} bytes; aborted")
                fh.write(chunk)
                bar.update(len(chunk))
            if length is not None and received != length:
                raise DownloadError(
                    f"{url}: transfer interrupted after {received} of {length} bytes"
                )
            fh.flush()
            fh.seek(0)
            digest = hashlib.sha1(b"blob %d\0" % received)
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            blob_id = digest.hexdigest()
            if expected_id is not None and blob_id != expected_id:
                raise DownloadError(
                    f"{url}: wrong content ({received} bytes, git blob id "
                    f"{blob_id}, expected {expected_id})"
                )
    return blob_id


def _already_good(target, expected_id):
    """Why ``target`` can be kept (a str), or None if it must be downloaded.

    Kept when its blob id matches, or when it decodes to the known pixels
    (a re-encoded copy of the official data, such as the PNG-derived TIFFs).
    """
    if not target.is_file():
        return None
    if expected_id is not None and git_blob_id(target) == expected_id:
        return "git blob id verified"
    key = {name: k for k, name in VOLUME_FILES.items()}.get(target.name)
    if key is None:
        return None
    try:
        if pixel_sha256(read_stack(target)) == PIXEL_SHA256[key]:
            return "other bytes, pixel sha256 verified"
    except (DataFormatError, DataNotFoundError):
        pass
    return None


def download_isbi2012(
    dest=None,
    *,
    mirrors=None,
    progress=True,
    expected=None,
    files=None,
    timeout=60.0,
    force=False,
):
    """Download the three ISBI 2012 TIFF volumes into ``dest``.

    Args:
        dest: destination folder; default ``$ISBI2012_DIR`` if set, else
            ``~/.keras/datasets/isbi2012`` (``$KERAS_HOME`` respected).
        mirrors: base URLs tried in order for each file; ``None`` means
            ``$ISBI2012_MIRRORS`` (comma/space separated) or :data:`MIRRORS`.
        progress: show a tqdm progress bar per file.
        expected: ``{filename: git blob id}``; default
            :data:`OFFICIAL_BLOB_IDS`. A value ``None`` skips the check.
        files: file names to fetch; default all three volumes.
        timeout: socket timeout in seconds for each request.
        force: download even when a verified copy is already there.

    A file already in ``dest`` is kept when its blob id matches, or when it
    decodes to the known pixels (a re-encoded copy of the official data).

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        DownloadError: every mirror failed for a file; the message lists each
            mirror's error and says where to put the files by hand. Files
            verified before the failure stay; nothing half-written is left.
    """
    mirrors = _mirrors_from(mirrors)
    if dest is None:
        env = os.environ.get(ENV_VAR)
        dest = Path(env).expanduser() if env else default_data_dir()
    dest = Path(dest).expanduser()
    expected = dict(OFFICIAL_BLOB_IDS if expected is None else expected)
    files = tuple(VOLUME_FILES.values()) if files is None else tuple(files)
    unknown = [f for f in files if f not in expected]
    if unknown:
        raise ValueError(
            f"No expected blob id for {unknown}; pass expected={{name: blob_id}} "
            "(None to skip the check). Received: files={files!r}"
        )
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"dest must be a folder. Received: dest={str(dest)!r} (a file)")
    dest.mkdir(parents=True, exist_ok=True)

    for name in files:
        target = dest / name
        reason = None if force else _already_good(target, expected[name])
        if reason:
            if progress:
                print(f"{name}: already in {dest} ({reason})")
            continue
        errors = []
        for mirror in mirrors:
            url = _join(mirror, name)
            try:
                _fetch(url, target, expected[name], timeout=timeout, progress=progress)
            except urllib.error.HTTPError as exc:
                errors.append(f"{url}: HTTP {exc.code} {exc.reason}")
            except urllib.error.URLError as exc:
                errors.append(f"{url}: cannot connect ({exc.reason})")
            except (OSError, http.client.HTTPException, socket.timeout) as exc:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
            except DownloadError as exc:
                errors.append(str(exc))
            else:
                if progress:
                    print(f"{name}: downloaded and verified from {mirror}")
                break
        else:
            offline = all(": cannot connect (" in e for e in errors)
            raise DownloadError(
                f"Could not download {name}; every mirror failed"
                + (" (no mirror could be reached: are you offline?)" if offline else "")
                + ":\n"
                + "\n".join(f"  - {e}" for e in errors)
                + "\n"
                + manual_instructions(dest, mirrors, files)
            )
    return dest


def _check_volume_file(path, key, errors):
    """Read one volume, return its report entry; append problems to errors."""
    entry = {"path": str(path)}
    try:
        array = read_stack(path)
    except (DataFormatError, DataNotFoundError) as exc:
        errors.append(str(exc))
        entry["error"] = str(exc)
        return entry, None
    entry.update(
        shape=list(array.shape),
        dtype=str(array.dtype),
        pixel_sha256=pixel_sha256(array),
        known_pixel_sha256=PIXEL_SHA256[key],
    )
    entry["pixels_match"] = entry["pixel_sha256"] == PIXEL_SHA256[key]
    if Path(path).is_file():
        entry["git_blob_id"] = git_blob_id(path)
        entry["official_bytes"] = entry["git_blob_id"] == OFFICIAL_BLOB_IDS.get(
            Path(path).name
        )
    return entry, array


def check_data_dir(path):
    """Validate an ISBI 2012 data directory and report the pixel hashes.

    Checks every complete or partial layout found (TIFF volumes, PNG
    folders): files readable, ``uint8 (N, H, W)``, training images and labels
    with the same shape, labels in {0, 255}, 30 x 512 x 512 per volume, and
    the SHA-256 of the decoded pixels against :data:`PIXEL_SHA256`.

    Returns:
        A JSON-serialisable dict: ``path``, ``layout`` (the one
        :func:`keras_unets.data.load_isbi2012` uses, or None), ``ok``,
        ``errors`` (messages naming the files), ``warnings`` and
        ``volumes[layout][key]`` with ``shape``, ``dtype``, ``pixel_sha256``,
        ``known_pixel_sha256``, ``pixels_match`` (and ``git_blob_id``,
        ``official_bytes`` for files).
    """
    path = Path(path).expanduser()
    report = {
        "path": str(path),
        "layout": None,
        "ok": False,
        "errors": [],
        "warnings": [],
        "volumes": {},
    }
    errors, warnings = report["errors"], report["warnings"]
    if not path.is_dir():
        errors.append(f"{path}: not a directory.\n{manual_instructions(path)}")
        return report
    report["layout"] = detect_layout(path)
    candidates = {
        "tiff": {k: path / n for k, n in VOLUME_FILES.items()},
        "png": {k: path / f for k, f in PNG_DIRS.items()},
    }
    for layout, paths in candidates.items():
        present = {k: p for k, p in paths.items() if p.exists()}
        if not present:
            continue
        for key, p in paths.items():
            if key not in present:
                errors.append(f"{p}: missing ({layout} layout).")
        volumes, arrays = {}, {}
        for key, p in present.items():
            volumes[key], arrays[key] = _check_volume_file(p, key, errors)
        report["volumes"][layout] = volumes
        for key, array in arrays.items():
            if array is None:
                continue
            if tuple(array.shape) != (30, 512, 512):
                errors.append(
                    f"{present[key]}: expected 30 slices of 512 x 512 px. "
                    f"Received: shape={tuple(array.shape)}."
                )
            elif not volumes[key]["pixels_match"]:
                warnings.append(
                    f"{present[key]}: pixels differ from the published ISBI "
                    "2012 data (sha256 mismatch)."
                )
        images, labels = arrays.get("train_images"), arrays.get("train_labels")
        if labels is not None:
            try:
                check_labels(labels, name=str(present["train_labels"]))
            except DataFormatError as exc:
                errors.append(str(exc))
            else:
                volumes["train_labels"]["cell_fraction"] = float(
                    np.count_nonzero(labels) / labels.size
                )
        if images is not None and labels is not None and images.shape != labels.shape:
            errors.append(
                f"{present['train_labels']}: {labels.shape[0]} label slices of "
                f"{labels.shape[1:]} px do not match {present['train_images']}: "
                f"{images.shape[0]} image slices of {images.shape[1:]} px."
            )
    if not report["volumes"]:
        errors.append(
            f"{path}: holds neither the TIFF volumes nor the png/ folders.\n"
            + manual_instructions(path)
        )
    report["ok"] = not errors and report["layout"] is not None
    return report
