"""The kernel tests again with the lesser instruction sets forced through the libraries' own
switches, so that a machine with AVX-512 VNNI also runs the paths of an AVX2-only or older CPU:
`ATEN_CPU_CAPABILITY` for ATen's vectorised kernels, `ONEDNN_MAX_CPU_ISA` for oneDNN's,
`MKL_ENABLE_INSTRUCTIONS` for MKL's fp32 GEMM. They are read once, when torch loads, hence a
process of their own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSER = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
# AVX2 is the CPU users have; the plain `default` build runs with `make test-all`.
ISAS = ["avx2", pytest.param("default", marks=pytest.mark.slow)]
pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 instruction sets")


def _run(code_or_args: list[str], isa: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *code_or_args],
        env=os.environ | LESSER[isa],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("isa", ISAS)
def test_screen_kernels_with_a_lesser_isa(isa: str) -> None:
    # Every kernel test of the screen (random and adversarial cases, each kernel, both forms).
    done = _run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/runtime/test_screening.py",
         "-k", "not real_model and not split_batch and not encoder_picks"],
        isa,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


@pytest.mark.parametrize("isa", ISAS)
def test_the_encoder_is_exact_with_a_lesser_isa(isa: str, splade_model_dir: Path) -> None:
    # oneDNN's 8-bit product saturates without VNNI, and `_int_mm` goes through it: the check at
    # load refuses both; what the encoder picks instead gives the float64 head's weights.
    script = f"""
import torch
from pathlib import Path
from elserve.runtime import Encoder
from elserve.runtime.head import PLAIN
from tests.runtime.reference import dense
from tests.runtime.test_screening import _rows, float64_head
from tests.runtime.texts import VARIED_TEXTS

torch.set_num_threads(1)
encoder = Encoder.load(Path({str(splade_model_dir)!r}), num_threads=1)
choice = encoder._head.choice
assert choice.seconds["short"]["onednn-u8s8"] is None, choice
assert choice.seconds["short"]["int_mm"] is None, choice
model = encoder.model
texts = VARIED_TEXTS[:40]
ids = [e.ids for e in encoder.tokenize(texts)]
def head(batch):
    return float64_head(_rows(encoder, batch), [len(x) for x in batch], model.decoder_weight, model.decoder_bias)

# One bulk batch, and each text alone (the short form; its own rows, as the layers round by shape).
alone = [v for one in ids for v in encoder.encode_ids([one])]
for vectors, want in ((encoder.encode_ids(ids), head(ids)), (alone, torch.cat([head([one]) for one in ids]))):
    got = torch.stack([torch.from_numpy(dense(v, want.shape[1])) for v in vectors])
    if PLAIN not in (choice.short, choice.bulk):
        assert torch.equal(got, want)
    assert float((got - want).abs().max()) < 1e-5
# Without native bf16 (oneDNN capped below it), the opt-in bf16 layers are refused, not run slowly.
try:
    Encoder(model, encoder.tokenizer, precision="bf16")
    raise AssertionError("bf16 was not refused")
except ValueError as refused:
    assert "native bfloat16" in str(refused)
print("kernels", encoder.kernels)
"""
    done = _run(["-c", script], isa)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "kernels" in done.stdout
