"""How each version of SageMaker's XGBoost container writes ``xgboost-model``, and reading it back.

From aws/sagemaker-xgboost-container, ``algorithm_mode/train.py`` at the end of ``train_job``:

* 0.90-x and 1.0-1 (Python 3.7): ``pkl.dump(bst, open(model_location, 'wb'))`` — a pickled Booster
  with the interpreter's default protocol (3);
* 1.2-1 and 1.2-2: ``pkl.dump(bst, f, protocol=4)``;
* 1.3-1 onwards (the switch is the "Release 1.3-1" commit 01125a9, "Use save_model() as the
  default output format"): ``bst.save_model(model_location)`` — XGBoost's own format, which
  XGBoost 1.3-1.7 writes as its legacy binary and XGBoost 2+ (the 3.0-5 image) as UBJSON.

The pre-1.0 built-in algorithm image (repository ``xgboost``) pickled its booster as well.

Every version's serving code (``serve_utils.get_loaded_booster``) tries ``pickle.load`` first and
then ``xgb.Booster().load_model``, so a model directory in either format is served.

Stratum's XGBoost (2+) cannot write the legacy binary any more: for 1.3-1 and later it writes
what ``save_model`` writes today (UBJSON), which ``Booster.load_model`` reads as a user's script
on those images would.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

MODEL_NAME = "xgboost-model"
_VERSION = re.compile(r"^(\d+)\.(\d+)-(\d+)")
FIRST_SAVE_MODEL_VERSION = (1, 3)


def pickle_protocol(image: str | None) -> int | None:
    """The pickle protocol the container of ``image`` dumps its booster with, or None when that
    container writes with ``Booster.save_model``."""
    if not image:
        return None
    path = image.split("@", 1)[0]
    repository, _, tag = path.rsplit("/", 1)[-1].partition(":")
    if repository.lower() == "xgboost":  # the pre-1.0 built-in algorithm
        return 3
    match = _VERSION.match(tag)
    if match is None:  # "latest" or an unversioned tag: the newest container's behaviour
        return None
    version = (int(match.group(1)), int(match.group(2)))
    if version >= FIRST_SAVE_MODEL_VERSION:
        return None
    return 4 if version >= (1, 2) else 3


def save(booster: Any, model_dir: Path, image: str | None) -> Path:
    """Write ``booster`` to model_dir/xgboost-model as the container of ``image`` writes it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_NAME
    protocol = pickle_protocol(image)
    if protocol is None:
        path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    else:
        path.write_bytes(pickle.dumps(booster, protocol=protocol))
    return path


def load(raw: bytes) -> Any | None:
    """A booster from a model file in either format (pickle first, as the container's serving code
    tries it), or None when the file is neither."""
    import xgboost as xgb

    try:
        booster = pickle.loads(raw)
        return booster if isinstance(booster, xgb.Booster) else None
    except Exception:
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError:
            return None
        return booster
