"""A tiny `pass_through` TorchScript model, made here: its output is each token's id (times its mask),
so what `_infer` answers can be checked exactly. Its vocabulary is the one Elastic's tests upload."""

from __future__ import annotations

import base64
import io

import torch

VOCABULARY = ["[PAD]", "[UNK]", "these", "are", "my", "words"]
CONFIG = {
    "description": "ids passed through",
    "model_type": "pytorch",
    "inference_config": {"pass_through": {"tokenization": {"bert": {"with_special_tokens": False}}}},
}


class _Ids(torch.nn.Module):
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        return (input_ids * attention_mask).to(torch.float32).unsqueeze(-1)


class _Pooled(torch.nn.Module):
    """(texts, 2): the number of real tokens and the sum of their ids."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        return torch.stack([attention_mask.sum(1), (input_ids * attention_mask).sum(1)], dim=1).to(torch.float64)


def torchscript(pooled: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(_Pooled() if pooled else _Ids()), buffer)
    return buffer.getvalue()


def definition_part(pooled: bool = False) -> dict:
    """The body of `PUT .../definition/0` for the whole model in one part."""
    data = torchscript(pooled)
    return {"definition": base64.b64encode(data).decode(), "total_definition_length": len(data), "total_parts": 1}
