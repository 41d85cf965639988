"""The encoder: tokenizer, BERT forward, SPLADE pooling and sparsification.

Imports no other part of elserve; `deployments/` drives it, `api/` renders its vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from elserve.runtime.config import BertConfig, ModelFormatError
from elserve.runtime.sparse import SparseVector, TokenNames, sparsify, to_token_weights, token_name
from elserve.runtime.tokenizer import Encoded, Tokenizer

if TYPE_CHECKING:
    from elserve.runtime.encoder import Encoder


def __getattr__(name: str) -> Any:
    # `Encoder` imports torch: loaded when first asked for, so that a process that only reads
    # configurations, tokenizes or serves HTTP (the CLI, the API process) does not pay for torch.
    if name == "Encoder":
        from elserve.runtime.encoder import Encoder

        return Encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BertConfig",
    "Encoded",
    "Encoder",
    "ModelFormatError",
    "SparseVector",
    "TokenNames",
    "Tokenizer",
    "sparsify",
    "to_token_weights",
    "token_name",
]
