"""Fetching files by URL (`https://`, `http://`, `file://`): small ones whole, large ones resumable.

urllib honours the proxy variables (`https_proxy`, `http_proxy`, `no_proxy`,
upper case too) through its default `ProxyHandler`. A large file is written
to a partial file kept in the caller's scratch directory; after a dropped
connection the next attempt asks for the rest with an HTTP `Range`, and after
a killed process the next install does the same. A partial file is only
ever a prefix: the whole file is checked (size and sha256) before it is
moved into place, and a file that fails the check is deleted.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from elserve.models.sources import ModelDownloadError, ProgressCallback, SourceUnavailable

logger = logging.getLogger("elserve.models")

_BLOCK = 1 << 20


@dataclass(frozen=True)
class TransferPolicy:
    """`connect_timeout_s` bounds a request that gets no answer (the probe of a repository that cannot be
    reached costs at most this); `read_timeout_s` a transfer that stalls; `retries` how often a transfer that
    broke off without any progress is tried again (one that made progress does not use up a retry)."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5


DEFAULT_POLICY = TransferPolicy()


def _unavailable_or_failed(url: str, exc: BaseException) -> ModelDownloadError:
    """Classify an error opening `url`: nothing there or no way there is `SourceUnavailable`."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return SourceUnavailable(f"[{url}] not found", status=404)
        return ModelDownloadError(
            f"error during downloading [{url}]. Got response code [{exc.code}]", status=exc.code if exc.code >= 400 else 500
        )
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, FileNotFoundError) or (isinstance(reason, OSError) and reason.errno == errno.ENOENT):
        return SourceUnavailable(f"[{url}] not found", status=404)
    return SourceUnavailable(f"[{url}] could not be reached: {reason}")


def _open(url: str, timeout: float, offset: int = 0) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    # An opener per request: its ProxyHandler reads the proxy variables now (urlopen's shared opener
    # would keep the ones of its first use).
    try:
        return urllib.request.build_opener().open(request, timeout=timeout)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _unavailable_or_failed(url, exc) from exc


def check_scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ModelDownloadError(f"[{url}] must be an http://, https:// or file:// URL", status=400)
    return scheme


def fetch_bytes(url: str, *, limit: int, policy: TransferPolicy = DEFAULT_POLICY) -> bytes:
    """A small file (metadata, vocabulary), whole; more than `limit` bytes is an error."""
    check_scheme(url)
    with _open(url, policy.connect_timeout_s) as response:
        try:
            data = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise SourceUnavailable(f"[{url}] broke off: {exc}") from exc
    if len(data) > limit:
        raise ModelDownloadError(f"[{url}] is larger than the limit of [{limit}] bytes")
    return data


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    target: Path,
    *,
    size: int,
    sha256: str,
    partial: Path,
    progress: ProgressCallback,
    policy: TransferPolicy = DEFAULT_POLICY,
) -> None:
    """Fetch `url` into `target` through `partial`, resuming whatever prefix `partial` already holds.

    Raises `ModelDownloadError` (the checksum or size differs: the partial file is deleted) or
    `SourceUnavailable` (no answer after the retries: the partial file is kept for the next attempt).
    """
    check_scheme(url)
    partial.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    restarted = False
    while True:
        offset = partial.stat().st_size if partial.exists() else 0
        if offset > size:
            partial.unlink()
            offset = 0
        resumed_from = offset
        try:
            if offset < size:
                offset = _transfer(url, partial, offset, size, progress, policy)
        except SourceUnavailable as exc:
            made_progress = (partial.stat().st_size if partial.exists() else 0) > resumed_from
            failures = 0 if made_progress else failures + 1
            if failures > policy.retries:
                raise
            logger.warning("download of [%s] interrupted (%s); resuming", url, exc.reason)
            time.sleep(policy.backoff_s * failures)
            continue
        except ModelDownloadError as exc:
            if exc.status != 416:
                raise
            partial.unlink(missing_ok=True)  # the file ends before `size`: it is not the file described
            raise ModelDownloadError(f"Model size does not match, expected [{size}] but got [{offset}]") from exc
        if offset < size:
            failures += 1  # the server closed a response early without an error
            if failures > policy.retries:
                raise ModelDownloadError(f"Model size does not match, expected [{size}] but got [{offset}] from [{url}]")
            continue
        actual = file_sha256(partial)
        if actual == sha256:
            break
        partial.unlink()
        if resumed_from and not restarted:
            # The prefix kept from an earlier attempt may belong to another version of the file: once more, whole.
            logger.warning("the resumed download of [%s] failed its checksum; downloading it again whole", url)
            restarted = True
            continue
        # Elasticsearch's message (ModelImporter.java).
        raise ModelDownloadError(f"Model sha256 checksums do not match, expected [{sha256}] but got [{actual}]")
    os.replace(partial, target)


def _transfer(
    url: str, partial: Path, offset: int, size: int, progress: ProgressCallback, policy: TransferPolicy
) -> int:
    """Append from `offset` until the response ends; return the bytes `partial` then holds."""
    response = _open(url, policy.connect_timeout_s, offset)
    with response:
        status = getattr(response, "status", None)
        if offset and status != 206:
            offset = 0  # no range support (or a file:// URL): start again from the beginning
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise ModelDownloadError(f"[{url}] answered the range [{offset}-] with [{content_range}]")
        sock = _socket_of(response)
        if sock is not None:
            sock.settimeout(policy.read_timeout_s)
        with partial.open("r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            progress(offset, size)
            try:
                # read1 and a flush per block: what has arrived is in the partial file, so a kill -9
                # keeps all of it for the resume (a buffered tail would be lost with the process).
                read = getattr(response, "read1", response.read)
                while offset < size and (block := read(min(_BLOCK, size - offset))):
                    out.write(block)
                    out.flush()
                    offset += len(block)
                    progress(offset, size)
            except (OSError, http.client.HTTPException) as exc:
                out.flush()
                raise SourceUnavailable(f"[{url}] broke off after [{offset}] of [{size}] bytes: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
    return offset


def _socket_of(response: object) -> socket.socket | None:
    fp = getattr(response, "fp", None)
    raw = getattr(fp, "raw", None)
    return getattr(raw, "_sock", None)
