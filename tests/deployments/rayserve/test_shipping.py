"""The object store's side of model distribution, on a local Ray in this process: a model whose source is
on the server's disk only is put once per cache key, a replica's arguments pickled as Serve pickles them
(cloudpickle) reach a task in another worker process that installs the files into its own cache; the
object is dropped with the last deployment (Serve's pins included).

(A replica whose object is gone fails with the reason (replica._fetch); one node cannot show it: Ray
reads a freed object's bytes still in the node's store.)"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec
from elserve.models.cache import MARKER
from elserve.models.sources.file import directory_sha256, model_files

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=128 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _install_in_worker(blob: bytes, fetch_timeout_s: float) -> str:
    """A replica's start in a Ray worker process: its arguments unpickled from Serve's bytes, then the model."""
    import ray.cloudpickle as cloudpickle

    from elserve.deployments.rayserve import replica

    replica.FETCH_TIMEOUT_S = fetch_timeout_s
    spec = cloudpickle.loads(blob)
    try:
        return str(replica.install_model(spec))
    except ModelDownloadError as exc:
        return "error: " + exc.reason


def test_files_shipped_once_per_key_installed_by_a_worker_and_dropped_with_the_last(
    local_ray: None, splade_model_dir: Path, tmp_path: Path
) -> None:
    import ray
    import ray.cloudpickle as cloudpickle

    from elserve.deployments.rayserve.replica import ReplicaSpec
    from elserve.deployments.rayserve.shipping import ShippedModels, local_references

    # The server's cache, holding an uploaded model (its files under the upload's key).
    server_cache = ModelCache(tmp_path / "server-cache")
    uploaded = ModelSpec("up", "upload:up", "c" * 64, key="upload-key")
    server_cache.install(ModelSpec("up", f"file:{splade_model_dir}", None, key="upload-key"))
    shipped = ShippedModels()
    files = shipped.files_for("d1", uploaded, server_cache)
    assert files is not None
    assert shipped.files_for("d2", uploaded, server_cache) is files  # one object per cache key
    assert files.sha256 == directory_sha256(splade_model_dir)
    assert files.size == sum(p.stat().st_size for p in model_files(splade_model_dir))  # the encoder's files only
    assert shipped.files_for("d3", ModelSpec("b", "pip:x==1#m", None), server_cache) is None
    with pytest.raises(ModelDownloadError, match=r"the files of model \[gone\] are no longer in"):
        shipped.files_for("d4", ModelSpec("gone", "upload:gone", None, key="gone-key"), server_cache)
    ref = files.ref
    assert local_references(ref) == 1

    node_cache = tmp_path / "node-cache"  # another node's disk: nothing of the server's cache
    spec = ReplicaSpec(
        "up", "upload:up", "c" * 64, str(node_cache), 1, "exact", 4096, 16, key="upload-key", files=files
    )
    # Serve pickles a replica's arguments at deploy and again at each update.
    blob, _ = cloudpickle.dumps(spec), cloudpickle.dumps(spec)
    assert local_references(ref) == 3  # Ray pins an ObjectRef pickled outside its own serialization
    install = ray.remote(num_cpus=0)(_install_in_worker)
    installed = ray.get(install.remote(blob, 60.0))
    assert installed == str(node_cache / "upload-key")
    assert (node_cache / "upload-key" / MARKER).is_file()
    assert directory_sha256(node_cache / "upload-key") == files.sha256

    shipped.release("d1")
    assert shipped.held() == {"upload-key": files.size}
    shipped.release("d2")
    assert shipped.held() == {}
    # Serve's pins are gone: only this test's own reference holds the object now; then nothing.
    assert local_references(ref) == 1
    del spec, files
    gc.collect()
    assert local_references(ref) == 1  # `ref` itself
    ref_hex = ref.hex()
    del ref
    gc.collect()
    counts = ray._private.worker.global_worker.core_worker.get_all_reference_counts()
    assert ref_hex.encode() not in counts and ref_hex not in counts
