"""Chunking: the strategies' settings (`settings.py`) and, beside them, the chunkers.

Offsets and rules follow Elasticsearch's `CORE/inference/chunking/` exactly.
"""
