"""Reading the built-in XGBoost's data formats: CSV (label first, no header) and LIBSVM."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

CSV = "csv"
LIBSVM = "libsvm"


def content_format(content_type: str | None, default: str = LIBSVM) -> str:
    """'text/csv', 'csv', 'text/csv; label_size=1' -> csv; 'libsvm', 'text/libsvm', 'text/x-libsvm' -> libsvm."""
    if not content_type:
        return default
    base = content_type.split(";")[0].strip().lower()
    if base in ("csv", "text/csv"):
        return CSV
    if base in ("libsvm", "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    raise ValueError(f"Content-type {content_type} not supported. Supported content-types are text/csv and "
                     "text/libsvm")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def load_training(directory: Path, fmt: str, csv_weights: bool = False):  # type: ignore[no-untyped-def]
    """A DMatrix of every file in a channel directory."""
    import xgboost as xgb

    files = _files(directory)
    if not files:
        raise ValueError(f"No data files found in channel directory {directory.name}")
    if fmt == CSV:
        blocks = [np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float32) for f in files if f.stat().st_size]
        if not blocks:
            raise ValueError(f"The {directory.name} channel has only empty files")
        data = np.vstack(blocks)
        if csv_weights:
            return xgb.DMatrix(data[:, 2:], label=data[:, 0], weight=data[:, 1])
        return xgb.DMatrix(data[:, 1:], label=data[:, 0])
    from scipy.sparse import vstack
    from sklearn.datasets import load_svmlight_files

    loaded = load_svmlight_files([str(f) for f in files], dtype=np.float32)
    matrices, labels = loaded[0::2], loaded[1::2]
    width = max(m.shape[1] for m in matrices)
    matrices = [m if m.shape[1] == width else _widen(m, width) for m in matrices]
    return xgb.DMatrix(vstack(matrices).tocsr(), label=np.concatenate(labels))


def _widen(matrix, width: int):  # type: ignore[no-untyped-def]
    matrix = matrix.tocsr().copy()
    matrix.resize((matrix.shape[0], width))
    return matrix


def parse_payload(payload: bytes, fmt: str, num_features: int | None = None):  # type: ignore[no-untyped-def]
    """Inference input: CSV rows without the label, or LIBSVM lines (a label, if present, is ignored)."""
    import xgboost as xgb

    text = payload.decode("utf-8").strip()
    if fmt == CSV:
        rows = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float32)
        if num_features is not None and rows.shape[1] == num_features + 1:
            rows = rows[:, 1:]  # the label column was left in; the container tolerates that too
        return xgb.DMatrix(rows)
    from sklearn.datasets import load_svmlight_file

    lines = []
    for line in text.splitlines():
        parts = line.split()
        if parts and ":" in parts[0]:
            parts.insert(0, "0")  # no label: give load_svmlight_file the one it requires
        lines.append(" ".join(parts))
    matrix, _ = load_svmlight_file(io.BytesIO("\n".join(lines).encode()), n_features=num_features,
                                   dtype=np.float32)
    return xgb.DMatrix(matrix)
