"""The CPU features the kernels care about, read from /proc/cpuinfo's text, and the bf16 refusal."""

from __future__ import annotations

import os
import subprocess
import sys

from elserve.runtime.cpu import FEATURES, bf16_refusal, cpu_features, cpu_flags, machine_kernels

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
"""
SAPPHIRE_RAPIDS = "flags\t: sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve i8mm bf16\n"


def test_flags_of_each_architecture() -> None:
    assert {"avx2", "fma"} <= cpu_flags(ZEN3) and "avx512f" not in cpu_flags(ZEN3)
    assert {"asimd", "i8mm", "bf16", "sve"} <= cpu_flags(GRAVITON3)
    assert cpu_flags("nothing here") == set()
    features = cpu_features(cpu_flags(SAPPHIRE_RAPIDS))
    assert set(features) == set(FEATURES)
    assert features["avx512_vnni"] and features["amx_bf16"] and not features["asimd"]


def test_bf16_is_refused_without_native_bfloat16() -> None:
    refusal = bf16_refusal(cpu_flags(ZEN3), onednn_max_isa="")
    assert refusal is not None and "avx512_bf16" in refusal and "[exact]" in refusal
    assert bf16_refusal(cpu_flags(SAPPHIRE_RAPIDS), onednn_max_isa="") is None
    assert bf16_refusal(cpu_flags(GRAVITON3), onednn_max_isa="") is None
    # A CPU that has it, with oneDNN capped below it, is refused too, and the cap is named.
    capped = bf16_refusal(cpu_flags(SAPPHIRE_RAPIDS), onednn_max_isa="AVX2")
    assert capped is not None and "ONEDNN_MAX_CPU_ISA=AVX2" in capped


def test_machine_kernels_names_what_torch_runs() -> None:
    info = machine_kernels()
    assert info["torch_capability"] in ("DEFAULT", "AVX2", "AVX512", "SVE256", "ZVECTOR", "VSX", "NEON")
    assert set(info["features"]) <= set(FEATURES)


def test_serve_refuses_bf16_where_it_would_be_slow() -> None:
    # oneDNN capped at AVX2 has no bf16 on any CPU: the server does not start, and says why.
    elserve = os.path.join(os.path.dirname(sys.executable), "elserve")
    done = subprocess.run(
        [elserve, "serve", "--precision", "bf16", "--port", "1"],
        env=os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2"},
        capture_output=True,
        text=True,
        timeout=540,  # only against a hang (a server that started after all); importing PyTorch takes what it takes
    )
    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())  # as one line, out of typer's box
    assert "native bfloat16" in said and "ONEDNN_MAX_CPU_ISA=AVX2" in said
