"""Which local runtime stands in for a container image.

SageMaker jobs name a Docker image; Stratum runs no containers, so each image maps to a runtime:

- ``xgboost``: the built-in XGBoost algorithm (src/stratum/algorithms/xgboost), or the user's
  script when a training job sets ``sagemaker_program`` (the XGBoost container's framework mode);
- ``python``: a framework image (scikit-learn, PyTorch, TensorFlow, Hugging Face, plain Python)
  whose jobs run the user's script with the server's own Python interpreter;
- ``host``: the container's entrypoint runs as-is on the host (only through user configuration).

The built-in table matches the repository name of SageMaker's ECR images from any registry
account or region; a YAML file (``STRATUM_JOB_IMAGES``) adds entries that
are tried first::

    images:
      - match: "123456789012.dkr.ecr.*.amazonaws.com/team/trainer:*"   # fnmatch on the whole URI
        runtime: python
        python: /opt/envs/trainer/bin/python   # optional: the image's interpreter (default: the server's)

A job of a ``python`` image runs in a virtualenv of its own layered over that interpreter's
packages (stratum.jobs.pyenv), with its ``python``/``pip`` first on PATH.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

RUNTIMES = ("xgboost", "python", "host")

# Repository name (last path component of the image) -> runtime.
BUILTIN_REPOSITORIES: dict[str, str] = {
    "sagemaker-xgboost": "xgboost",
    "xgboost": "xgboost",  # the pre-1.0 built-in algorithm image
    "sagemaker-scikit-learn": "python",
    # The SDK's remote functions (@remote, @step) default to the base Python image of the client's
    # Python version ("sagemaker-base-python-310", "-38"); SageMaker Studio's image is the
    # SageMaker Distribution ("sagemaker-distribution-prod").
    "sagemaker-base-python": "python",
    "sagemaker-base-python-310": "python",
    "sagemaker-base-python-38": "python",
    "sagemaker-distribution": "python",
    "sagemaker-distribution-prod": "python",
    "sagemaker-pytorch": "python",
    "pytorch-training": "python",
    "pytorch-inference": "python",
    "sagemaker-tensorflow": "python",
    "tensorflow-training": "python",
    "tensorflow-inference": "python",
    "huggingface-pytorch-training": "python",
    "huggingface-pytorch-inference": "python",
    "huggingface-tensorflow-training": "python",
    "huggingface-tensorflow-inference": "python",
    "python": "python",  # python:3.x from Docker Hub / ECR Public, a common ScriptProcessor image
}

_REGISTRY_HOST = re.compile(r"^[^/]*[.:][^/]*/")  # "host.tld/" or "host:port/"


@dataclass(frozen=True)
class Runtime:
    kind: str  # one of RUNTIMES
    image: str
    repository: str
    python: str | None = None  # the image's interpreter when not the server's


class UnsupportedImage(Exception):
    def __init__(self, image: str) -> None:
        supported = ", ".join(sorted(BUILTIN_REPOSITORIES))
        super().__init__(f"Image {image} is not supported by Stratum; supported: SageMaker images of the "
                         f"repositories {supported} (any registry account and region), or an image mapped "
                         f"to a runtime in the job images file.")


def repository_of(image: str) -> str:
    """'683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1' -> 'sagemaker-xgboost'."""
    path = _REGISTRY_HOST.sub("", image.strip(), count=1)
    path = path.split("@", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return name.split(":", 1)[0].lower()


@lru_cache(maxsize=8)
def _user_entries(path: str, mtime: float) -> tuple[tuple[str, str, str | None], ...]:
    del mtime  # part of the cache key: an edited file is read again
    data = yaml.safe_load(Path(path).read_text()) or {}
    entries = []
    for entry in data.get("images") or []:
        if not isinstance(entry, dict) or "match" not in entry or entry.get("runtime") not in RUNTIMES:
            raise ValueError(f"{path}: every image entry needs 'match' and a 'runtime' in {RUNTIMES}")
        python = entry.get("python")
        if python is not None and not isinstance(python, str):
            raise ValueError(f"{path}: 'python' must be the path of an interpreter")
        entries.append((str(entry["match"]), str(entry["runtime"]), python))
    return tuple(entries)


def check_file(images_file: Path | None) -> None:
    """Read ``STRATUM_JOB_IMAGES`` once when the server starts, so a missing or malformed file is
    said at once (ValueError, one line) rather than by the first job that needs it."""
    if images_file is None:
        return
    path = Path(images_file).resolve()
    if not path.is_file():
        raise ValueError(f"{path}: the job images file (STRATUM_JOB_IMAGES) does not exist")
    try:
        _user_entries(str(path), path.stat().st_mtime)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    except (AttributeError, TypeError):
        raise ValueError(f"{path}: expected a mapping with an 'images' list") from None


def resolve(image: str, images_file: Path | None = None) -> Runtime:
    """The runtime for ``image``; raises UnsupportedImage."""
    repository = repository_of(image)
    if images_file is not None and Path(images_file).is_file():
        for pattern, kind, python in _user_entries(str(images_file), Path(images_file).stat().st_mtime):
            if fnmatch.fnmatchcase(image, pattern):
                return Runtime(kind, image, repository, python)
    kind = BUILTIN_REPOSITORIES.get(repository)
    if kind is None:
        raise UnsupportedImage(image)
    return Runtime(kind, image, repository)
