"""Whether an upload may take more disk: the declared length, the uploads' store cap, the disk's
flood-stage watermark. Each refusal is the error Elasticsearch gives for it, or says elserve's rule.

Sources: `TransportPutTrainedModelAction.java` (`MAX_NATIVE_DEFINITION_INDEX_SIZE`, 50gb: past it a
new PyTorch model is refused, 409), `IndexMetadata.INDEX_READ_ONLY_ALLOW_DELETE_BLOCK` (the block a
disk past its flood-stage watermark puts on an index: 429 `cluster_block_exception`; deletes pass).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from elserve.bytesize import byte_size_text
from elserve.errors import ClusterBlockException, ElasticsearchError, StatusException
from elserve.store import StoreWriteError
from elserve.store.disk_space import FloodStage, disk_room

# Where Elasticsearch keeps definition parts and vocabularies: the index a block names.
NATIVE_INDEX = ".ml-inference-native-000002"
_FLOOD_BLOCK = "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block"


def flood_stage_block() -> ClusterBlockException:
    return ClusterBlockException(f"index [{NATIVE_INDEX}] blocked by: [{_FLOOD_BLOCK}];")


def store_full(limit: int) -> StatusException:
    """`TransportPutTrainedModelAction`'s refusal of a new PyTorch model when the store is past its size."""
    return StatusException(
        f"Native model store has exceeded the maximum acceptable size of {byte_size_text(limit)}, "
        "please delete older unused pytorch models",
        409,
    )


def check_store(in_use: int, declared: int, limit: int, model_id: str) -> None:
    """The uploads' store with this model's declared definition must fit the cap (elserve checks the
    declared length at once; Elasticsearch finds the store full only at the next model's PUT)."""
    if in_use > limit:
        raise store_full(limit)
    if in_use + declared > limit:
        raise StatusException(
            f"model [{model_id}] declares a total_definition_length of [{declared}] bytes; with the "
            f"[{byte_size_text(in_use)}] uploaded models take already, that exceeds the native model store's "
            f"maximum acceptable size of {byte_size_text(limit)}, please delete older unused pytorch models",
            409,
        )


def check_disk(where: Path, flood_stage: FloodStage, incoming: int, ahead: int, model_id: str) -> None:
    """`incoming` bytes are about to be written; `ahead` more will follow for this model (its parts
    still to come and the installed copy). Refused, before anything is written, when the disk would
    pass its flood-stage watermark."""
    room = disk_room(where, flood_stage)
    if room.above_floor < incoming:
        raise flood_stage_block()
    if room.above_floor < incoming + ahead:
        raise StatusException(
            f"model [{model_id}] needs [{byte_size_text(incoming + ahead)}] more on disk (its remaining definition "
            f"and the installed copy) but [{byte_size_text(max(0, room.above_floor))}] is free below the "
            "flood-stage watermark; free disk space or delete unused models",
            429,
        )


def write_error(exc: OSError) -> ElasticsearchError | StoreWriteError:
    """An upload's file write that failed, without the path: a full disk as the flood-stage block,
    anything else (a read-only or unwritable data directory) as a store write error (503)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return flood_stage_block()
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return StoreWriteError(f"the uploaded model's files could not be written: {reason}")
