"""The ONNX Runtime peer's model: the masked-LM exported with SPLADE pooling inside the graph.

The graph is MLM logits -> padding masked out -> max over tokens -> log(1 + relu), with dynamic
batch and sequence axes; inputs `input_ids` and `attention_mask` (int64), output `weights`
(batch, vocabulary). Exported once per model (by content) into the data directory.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

OPSET = 17


def onnx_path_for(model_dir: Path, cache_dir: Path) -> Path:
    """Where the export of `model_dir` lives: named by the digest of its config and weights."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with (model_dir / name).open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return cache_dir / f"splade-{digest.hexdigest()[:16]}-opset{OPSET}.onnx"


def export_splade_onnx(model_dir: Path, target: Path) -> Path:
    """Export `model_dir` to `target` unless it is there already; return `target`.

    Runs transformers' `AutoModelForMaskedLM` through torch's TorchScript-based exporter (no
    onnxscript needed). Written to a scratch name and renamed, so a killed export leaves
    nothing that looks finished.
    """
    if target.is_file():
        return target
    import torch
    from transformers import AutoModelForMaskedLM

    class SpladeGraph(torch.nn.Module):
        def __init__(self, mlm: torch.nn.Module) -> None:
            super().__init__()
            self.mlm = mlm

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
            mask = attention_mask.unsqueeze(-1).to(logits.dtype)
            # Padding gets a very low logit, so the max never takes it (relu then zeroes it).
            masked = logits * mask + (mask - 1.0) * 1e4
            return torch.log1p(torch.relu(torch.amax(masked, dim=1)))

    mlm = AutoModelForMaskedLM.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        # Tracing warns of the Python branches in transformers' mask code: they hold for every
        # shape here (the mask is as long as the input), which the agreement check confirms.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                SpladeGraph(mlm),
                (ids, mask),
                str(scratch),
                input_names=["input_ids", "attention_mask"],
                output_names=["weights"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "weights": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


def run_export(job: tuple[Path, Path], progress: object) -> Path:
    """Child entry (see `isolated.run_isolated`): `(model_dir, target)`."""
    model_dir, target = job
    return export_splade_onnx(model_dir, target)


def quantize_export(job: tuple[Path, Path], progress: object) -> Path:
    """Child entry: ONNX Runtime's dynamic int8 quantization (int8 weights, activations quantized
    at run time) of the export `job[0]` into `job[1]`, unless it is there already."""
    source, target = job
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        scratch = target.with_name(f".{target.name}.{os.getpid()}.partial")
        quantize_dynamic(str(source), str(scratch), weight_type=QuantType.QInt8)
        os.replace(scratch, target)
    return target
