"""The model catalogue, model sources (`pip:`, `file:`), the on-disk cache and background downloads."""

from elserve.models.cache import ModelCache, model_size_bytes
from elserve.models.catalogue import (
    BUILTIN_MODELS,
    ELSER_MODEL_IDS,
    ELSER_V1_MODEL,
    ELSER_V2_MODEL,
    ELSER_V2_MODEL_LINUX_X86,
    Catalogue,
    ModelSpec,
    UnknownModelError,
    is_elser_model,
    platform_default_elser_model,
    resolve,
)
from elserve.models.downloads import DownloadState, DownloadStatus, ModelDownloads
from elserve.models.sources import ModelDownloadError, ProgressCallback

__all__ = [
    "BUILTIN_MODELS",
    "ELSER_MODEL_IDS",
    "ELSER_V1_MODEL",
    "ELSER_V2_MODEL",
    "ELSER_V2_MODEL_LINUX_X86",
    "Catalogue",
    "DownloadState",
    "DownloadStatus",
    "ModelCache",
    "ModelDownloadError",
    "ModelDownloads",
    "ModelSpec",
    "ProgressCallback",
    "UnknownModelError",
    "is_elser_model",
    "model_size_bytes",
    "platform_default_elser_model",
    "resolve",
]
