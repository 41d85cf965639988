"""The `hf:` source: a Hugging Face hub repository (`hf:naver/splade-v3`, `hf:naver/splade-v3@<revision>`).

Fetched with `huggingface_hub.snapshot_download`, only the files a model
needs (`ALLOW_PATTERNS`), into the hub's own cache (`HF_HUB_CACHE`, or
`HF_HOME/hub`), so `HF_HUB_OFFLINE=1` serves a snapshot downloaded earlier
or copied in. `HF_ENDPOINT` names a mirror; the proxy variables apply
(huggingface_hub's HTTP client reads them). The environment is read when the
download runs, not when elserve starts.

The revision is resolved to a commit before anything is fetched and that
commit is what gets recorded (the installed model says which one it is).
Every file is checked against the hub's own checksums: the cache names each
blob by its ETag, which is the file's sha256 for LFS files (the weights) and
its git blob id for the others.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.models.sources import (
    HF_CONFIG,
    HF_FILES,
    ModelDownloadError,
    ProgressCallback,
    SourceUnavailable,
    missing_required,
)
from elserve.models.sources.transfer import file_sha256

# What an encoder reads of a hub repository: the config, safetensors weights, the tokenizer files.
ALLOW_PATTERNS = list(HF_FILES)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "on", "yes", "true"}


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps its cache, read from the environment now."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def git_blob_id(path: Path) -> str:
    """The git object id of a file (what the hub reports for files not in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_blob(path: Path, name: str, expected: str) -> None:
    """Check a file against `expected`, the ETag its blob in the hub cache is named after (checked on the
    copy, so what is installed is what was verified)."""
    blob = expected
    if _SHA256.fullmatch(blob):
        actual = file_sha256(path)
    elif _COMMIT.fullmatch(blob):
        actual = git_blob_id(path)
    else:
        raise ModelDownloadError(f"[{name}] of the hub snapshot has no checksum to verify it by (blob [{blob}])")
    if actual != blob:
        raise ModelDownloadError(f"[{name}] checksums do not match, expected [{blob}] but got [{actual}]")


def _progress_class(progress: ProgressCallback) -> type:
    """A tqdm class for `snapshot_download` that shows nothing and reports the bytes written."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Report(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # The aggregate bar of bytes written; the per-file and file-count bars are ignored.
            self._reports = kwargs.get("name") == "huggingface_hub.snapshot_download" and kwargs.get("unit") == "B"
            self._done = 0
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._reports and n:
                self._done += int(n)
                progress(self._done, int(self.total) if self.total else None)
            return super().update(n)

    return _Report


@dataclass(frozen=True)
class HfSource:
    repo_id: str
    revision: str | None
    sha256: str | None = None  # unused: the hub's own checksums verify each file

    @classmethod
    def parse(cls, rest: str, sha256: str | None) -> HfSource:
        repo_id, _, revision = rest.partition("@")
        if not _REPO_ID.fullmatch(repo_id) or (revision == "" and "@" in rest):
            raise ModelDownloadError(f"model source [hf:{rest}] must be [hf:<owner>/<name>[@<revision>]]", status=400)
        return cls(repo_id, revision or None, sha256)

    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> dict[str, Any]:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        revision = self.revision or "main"
        progress(0, None)
        try:
            snapshot = Path(
                snapshot_download(
                    self.repo_id,
                    revision=revision,
                    allow_patterns=ALLOW_PATTERNS,
                    cache_dir=hub_cache_dir(),
                    endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
                    local_files_only=_truthy(os.environ.get("HF_HUB_OFFLINE")),
                    tqdm_class=_progress_class(progress),
                    max_workers=2,
                )
            )
        except LocalEntryNotFoundError as exc:  # offline, or the hub unreachable, and nothing in the cache
            raise SourceUnavailable(f"[hf:{self.repo_id}@{revision}] could not be fetched: {exc}") from exc
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
            raise SourceUnavailable(f"[hf:{self.repo_id}@{revision}] not found: {exc}", status=404) from exc
        except HfHubHTTPError as exc:
            raise ModelDownloadError(f"[hf:{self.repo_id}@{revision}] could not be fetched: {exc}", status=503) from exc
        except OSError as exc:
            raise SourceUnavailable(f"[hf:{self.repo_id}@{revision}] could not be reached: {exc}") from exc
        commit = snapshot.name
        if not _COMMIT.fullmatch(commit):
            raise ModelDownloadError(f"the hub snapshot [{snapshot}] is not named by a commit")
        if self.revision is not None and _COMMIT.fullmatch(self.revision) and self.revision != commit:
            raise ModelDownloadError(f"[hf:{self.repo_id}] gave commit [{commit}] for revision [{self.revision}]")
        present = {name for name in HF_FILES if (snapshot / name).is_file()}
        missing = missing_required(present)
        if missing or HF_CONFIG not in present:
            raise ModelDownloadError(
                f"[hf:{self.repo_id}@{commit}] lacks the model files {missing or [HF_CONFIG]} "
                "(a safetensors checkpoint with config.json and a tokenizer is needed)"
            )
        for name in sorted(present):
            shutil.copyfile(snapshot / name, dest / name)
            verify_blob(dest / name, name, expected=Path(os.path.realpath(snapshot / name)).name)
        return {"revision": commit, "repo_id": self.repo_id}


__all__ = ["ALLOW_PATTERNS", "HfSource", "git_blob_id", "hub_cache_dir", "verify_blob"]
