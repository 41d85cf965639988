"""Fetching files by URL (`https://`, `http://`, `file://`): small ones whole, large ones resumable.

urllib honours the proxy variables (`https_proxy`, `http_proxy`, `no_proxy`,
upper case too) through its default `ProxyHandler`. A large file is written
to a partial file kept in the caller's scratch directory; after a dropped
connection the next attempt asks for the rest with an HTTP `Range`, and after
a killed process the next install does the same. A partial file is only
ever a prefix: the whole file is checked (size and sha256) before it is
moved into place, and a file that fails the check is deleted.

What a repository says is not trusted to bound the work (opener.py for redirects): every fetch
has a deadline (a small file `fetch_deadline_s`; a large one that plus its size at
`min_rate_bytes_s`, over all its attempts), a large file's declared size must fit in the free
space of the disk it goes to, and one model keeps at most one partial file, the one of the
checksum being downloaded.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from elserve.models.sources import ModelDownloadError, ProgressCallback, SourceUnavailable
from elserve.models.sources.opener import Deadline, build_opener

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
    # The whole of a small file's fetch (metadata, vocabulary), and the base of a large file's deadline.
    fetch_deadline_s: float = 120.0
    # A large file's deadline grows with its size at this rate: slower than it over the whole transfer
    # (all its resumed attempts), the download fails; what it fetched is kept to resume.
    min_rate_bytes_s: float = 64 * 1024


DEFAULT_POLICY = TransferPolicy()


def _unavailable_or_failed(url: str, exc: BaseException) -> ModelDownloadError:
    """Classify an error opening `url`: nothing there or no way there is `SourceUnavailable`."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return SourceUnavailable(f"[{url}] not found", status=404)
        return ModelDownloadError(
            f"error during downloading [{url}]. Got response code [{exc.code}]",
            status=exc.code if exc.code >= 400 else 500,
        )
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, FileNotFoundError) or (isinstance(reason, OSError) and reason.errno == errno.ENOENT):
        return SourceUnavailable(f"[{url}] not found", status=404)
    return SourceUnavailable(f"[{url}] could not be reached: {reason}")


def _open(url: str, timeout: float, deadline: Deadline, offset: int = 0) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    # An opener per request: its ProxyHandler reads the proxy variables now (urlopen's shared opener
    # would keep the ones of its first use).
    try:
        return build_opener(deadline).open(request, timeout=min(timeout, max(deadline.remaining(), 0.001)))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if deadline.passed:
            raise _too_slow(url, deadline) from exc
        raise _unavailable_or_failed(url, exc) from exc


def _too_slow(url: str, deadline: Deadline) -> SourceUnavailable:
    return SourceUnavailable(f"[{url}] was not fetched within its deadline of [{deadline.seconds:.0f}s]")


def check_free_space(directory: Path, needed: int, url: str) -> None:
    """Refuse a download whose declared size does not fit on the disk it goes to (507, as Elasticsearch's
    `RestStatus.INSUFFICIENT_STORAGE`), before a byte of it is fetched."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise ModelDownloadError(
            f"not enough free disk space for [{url}]: it is [{needed}] bytes, the disk of the model cache has "
            f"[{free}] bytes free",
            status=507,
        )


def _drop_other_partials(partial: Path) -> None:
    """One model keeps one partial file: that of the checksum it downloads now (a repository that changes
    its checksum on every attempt does not pile them up)."""
    for other in partial.parent.glob("*.part"):
        if other != partial:
            other.unlink(missing_ok=True)


def check_scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ModelDownloadError(f"[{url}] must be an http://, https:// or file:// URL", status=400)
    return scheme


def fetch_bytes(url: str, *, limit: int, policy: TransferPolicy = DEFAULT_POLICY) -> bytes:
    """A small file (metadata, vocabulary), whole; more than `limit` bytes is an error."""
    check_scheme(url)
    deadline = Deadline(policy.fetch_deadline_s)
    try:
        with _open(url, policy.connect_timeout_s, deadline) as response:
            try:
                data = response.read(limit + 1)
            except (OSError, http.client.HTTPException) as exc:
                if deadline.passed:
                    raise _too_slow(url, deadline) from exc
                raise SourceUnavailable(f"[{url}] broke off: {exc}") from exc
    finally:
        deadline.cancel()
    if deadline.passed:
        raise _too_slow(url, deadline)  # cut off at the deadline: what arrived is not the whole file
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
    _drop_other_partials(partial)
    failures = 0
    restarted = False
    first = partial.stat().st_size if partial.exists() else 0
    deadline = Deadline(policy.fetch_deadline_s + max(size - first, 0) / policy.min_rate_bytes_s)
    try:
        while True:
            offset = partial.stat().st_size if partial.exists() else 0
            if offset > size:
                partial.unlink()
                offset = 0
            check_free_space(partial.parent, size - offset, url)
            resumed_from = offset
            try:
                if offset < size:
                    offset = _transfer(url, partial, offset, size, progress, policy, deadline)
            except SourceUnavailable as exc:
                made_progress = (partial.stat().st_size if partial.exists() else 0) > resumed_from
                failures = 0 if made_progress else failures + 1
                if failures > policy.retries or deadline.passed:
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
                    raise ModelDownloadError(
                        f"Model size does not match, expected [{size}] but got [{offset}] from [{url}]"
                    )
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
    finally:
        deadline.cancel()


def _transfer(
    url: str,
    partial: Path,
    offset: int,
    size: int,
    progress: ProgressCallback,
    policy: TransferPolicy,
    deadline: Deadline,
) -> int:
    """Append from `offset` until the response ends; return the bytes `partial` then holds."""
    if deadline.passed:
        raise _too_slow(url, deadline)
    response = _open(url, policy.connect_timeout_s, deadline, offset)
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
                if deadline.passed:
                    raise _too_slow(url, deadline) from exc
                raise SourceUnavailable(f"[{url}] broke off after [{offset}] of [{size}] bytes: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
    return offset


def _socket_of(response: object) -> socket.socket | None:
    fp = getattr(response, "fp", None)
    raw = getattr(fp, "raw", None)
    return getattr(raw, "_sock", None)
