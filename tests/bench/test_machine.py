"""The machine section of the benchmark: CPU features and the head product's limits."""

from __future__ import annotations

from elserve.bench.machine import machine_info, product_throughput
from elserve.runtime.products import KERNELS


def test_machine_info_names_the_cpu_features() -> None:
    cpu = machine_info()["cpu"]
    assert cpu["torch_capability"] and isinstance(cpu["features"], list)


def test_product_throughput_measures_every_precision_and_kernel() -> None:
    rates = product_throughput(rows=16, hidden=32, vocab=512)
    assert {"float32", "bfloat16", "fp32-screen"} <= set(rates) <= {"float32", "bfloat16", *KERNELS}
    assert all(rate > 0 for rate in rates.values())
