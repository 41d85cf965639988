"""The encoder: tokenizer, BERT forward, SPLADE pooling and sparsification.

Imports no other part of elserve; `deployments/` drives it, `api/` renders its vectors.
"""

from elserve.runtime.config import BertConfig, ModelFormatError
from elserve.runtime.encoder import Encoder
from elserve.runtime.sparse import SparseVector, TokenNames, sparsify, to_token_weights, token_name
from elserve.runtime.tokenizer import Encoded, Tokenizer

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
