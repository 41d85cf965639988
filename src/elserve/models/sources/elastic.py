"""The `elastic:` source: a model package in Elastic's model repository layout.

The layout is the one Elasticsearch's model package loader reads
(`x-pack/plugin/ml-package-loader`: `ModelLoaderUtils`, `ModelImporter`,
`TransportGetTrainedModelPackageConfigAction`): under a base URL, for a
packaged model id `<id>`,

    <id>.metadata.json   the package config: packaged_model_id, size, sha256,
                         inference_config, vocabulary_file, description, ...
    <id>.pt              the TorchScript model, `size` bytes, sha256 `sha256`
    <vocabulary_file>    `{"vocabulary": [...], "merges": [...], "scores": [...]}`

The base is Elastic's public repository (`https://ml-models.elastic.co`), a
mirror, or a `file://` directory for air-gapped installs. Source strings:
`elastic:<base URL>#<packaged model id>` (the catalogue writes them whole).
Installed as the Elastic layout: `model.pt`, `vocab.json`,
`trained_model_config.json` (the package's metadata as read).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from elserve.models.sources import (
    ELASTIC_CONFIG,
    ELASTIC_MODEL,
    ELASTIC_VOCAB,
    ModelDownloadError,
    ProgressCallback,
)
from elserve.models.sources.transfer import (
    DEFAULT_POLICY,
    TransferPolicy,
    check_scheme,
    download,
    fetch_bytes,
)

DEFAULT_MODEL_REPOSITORY = "https://ml-models.elastic.co"
METADATA_SUFFIX = ".metadata.json"
MODEL_SUFFIX = ".pt"
# Elasticsearch's limits (ModelLoaderUtils.VOCABULARY_SIZE_LIMIT); the metadata is small.
VOCABULARY_SIZE_LIMIT = 20 * 1024 * 1024
METADATA_SIZE_LIMIT = 1024 * 1024

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PACKAGED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def normalize_repository(repository: str) -> str:
    """The base URL with one trailing slash; a plain directory path becomes a `file://` URL.

    As Elasticsearch's check of `xpack.ml.model_repository`: a scheme among http, https and file, and no
    credentials in the URL.
    """
    repository = repository.strip()
    if repository.startswith("/"):
        repository = Path(repository).resolve().as_uri()
    parts = urlsplit(repository)
    if not parts.scheme:
        raise ModelDownloadError(
            f'the model repository [{repository}] must contain a scheme, supported schemes are "http", "https", "file"',
            status=400,
        )
    check_scheme(repository)
    if parts.username is not None or parts.password is not None:
        raise ModelDownloadError("the model repository does not support authentication", status=400)
    return repository.rstrip("/") + "/"


def packaged_model_id(model_id: str) -> str:
    """The package of an Elasticsearch model id: `.elser_model_2` is `elser_model_2` in the repository."""
    return model_id[1:] if model_id.startswith(".") else model_id


def elastic_source(repository: str, packaged_id: str) -> str:
    return f"elastic:{normalize_repository(repository)}#{packaged_id}"


def resolve_package_location(repository: str, artefact: str) -> str:
    """`artefact` under the repository; one that would leave it (another scheme, `..`) is refused."""
    base = normalize_repository(repository)
    resolved = urljoin(base, artefact)
    if urlsplit(resolved).scheme != urlsplit(base).scheme:
        raise ModelDownloadError(f"Illegal schema change in package location [{artefact}]", status=400)
    if not resolved.startswith(base) or "/../" in urlsplit(resolved).path + "/":
        raise ModelDownloadError(f"Illegal path in package location [{artefact}]", status=400)
    return resolved


@dataclass(frozen=True)
class PackageConfig:
    """A `<id>.metadata.json`, checked as `TransportGetTrainedModelPackageConfigAction` checks it."""

    packaged_model_id: str
    size: int
    sha256: str
    vocabulary_file: str | None
    raw: dict[str, Any] = field(hash=False, compare=False)

    @classmethod
    def parse(cls, data: bytes, expected_id: str) -> PackageConfig:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ModelDownloadError(f"Failed to load package metadata of [{expected_id}]: {exc}") from exc
        if not isinstance(raw, dict):
            raise ModelDownloadError(f"Failed to load package metadata of [{expected_id}]: not a JSON object")
        if raw.get("packaged_model_id") != expected_id:
            raise ModelDownloadError("Invalid package name")
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ModelDownloadError("Invalid package size")
        sha256 = raw.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise ModelDownloadError("Invalid package sha")
        vocabulary = raw.get("vocabulary_file")
        if vocabulary is not None and not isinstance(vocabulary, str):
            raise ModelDownloadError("Invalid package vocabulary_file")
        return cls(expected_id, size, sha256.lower(), vocabulary or None, raw)


@dataclass(frozen=True)
class ElasticRepositorySource:
    repository: str
    packaged_model_id: str
    sha256: str | None
    policy: TransferPolicy = DEFAULT_POLICY

    @classmethod
    def parse(cls, rest: str, sha256: str | None, policy: TransferPolicy = DEFAULT_POLICY) -> ElasticRepositorySource:
        repository, sep, packaged_id = rest.rpartition("#")
        if not sep:
            repository, packaged_id = DEFAULT_MODEL_REPOSITORY, rest
        if not _PACKAGED_ID.fullmatch(packaged_id):
            raise ModelDownloadError(
                f"model source [elastic:{rest}] must be [elastic:<packaged model id>] or "
                "[elastic:<repository URL>#<packaged model id>]",
                status=400,
            )
        return cls(normalize_repository(repository), packaged_id, sha256, policy)

    def metadata(self) -> PackageConfig:
        url = resolve_package_location(self.repository, self.packaged_model_id + METADATA_SUFFIX)
        return PackageConfig.parse(
            fetch_bytes(url, limit=METADATA_SIZE_LIMIT, policy=self.policy), self.packaged_model_id
        )

    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> dict[str, Any]:
        package = self.metadata()
        if self.sha256 is not None and package.sha256 != self.sha256:
            raise ModelDownloadError(
                f"the package [{self.packaged_model_id}] in [{self.repository}] has sha256 [{package.sha256}], "
                f"expected [{self.sha256}]"
            )
        if package.vocabulary_file is not None:
            (dest / ELASTIC_VOCAB).write_bytes(self._vocabulary(package.vocabulary_file))
        progress(0, package.size)
        download(
            resolve_package_location(self.repository, self.packaged_model_id + MODEL_SUFFIX),
            dest / ELASTIC_MODEL,
            size=package.size,
            sha256=package.sha256,
            # Named by its checksum: a prefix is only ever resumed into the file it belongs to.
            partial=scratch / "resume" / f"{package.sha256}{MODEL_SUFFIX}.part",
            progress=progress,
            policy=self.policy,
        )
        (dest / ELASTIC_CONFIG).write_text(json.dumps(package.raw, indent=2) + "\n", encoding="utf-8")
        return {"sha256": package.sha256, "size": package.size, "repository": self.repository}

    def _vocabulary(self, name: str) -> bytes:
        url = resolve_package_location(self.repository, name)
        if not urlsplit(url).path.endswith(".json"):
            raise ModelDownloadError(f"unknown format vocabulary file format [{name}]")
        data = fetch_bytes(url, limit=VOCABULARY_SIZE_LIMIT, policy=self.policy)
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise ModelDownloadError(f"Failed to load vocabulary file [{name}]: {exc}") from exc
        vocabulary = parsed.get("vocabulary") if isinstance(parsed, dict) else None
        if not isinstance(vocabulary, list) or not all(isinstance(token, str) for token in vocabulary):
            raise ModelDownloadError(f"Failed to load vocabulary file [{name}]: no [vocabulary] list of strings")
        return data


__all__ = [
    "DEFAULT_MODEL_REPOSITORY",
    "ElasticRepositorySource",
    "PackageConfig",
    "elastic_source",
    "normalize_repository",
    "packaged_model_id",
    "resolve_package_location",
]
