"""The sizes the runtime builds its kernels and batches with, in a module without torch.

The memory estimate (memory.py) sizes a deployment from them in the API process, which serves HTTP
and never loads torch itself: the workers' parents do.
"""

# The encoder layers' linears of at least this many weights are packed into oneDNN's blocked layout
# (bert._PackedLinear); smaller ones stay plain: they sit in the caches anyway, and for a short
# request the packed kernel's overhead costs more than it saves.
PACK_MIN_ELEMENTS = 1 << 18

# Big batches are screened in blocks: at most ROW_BLOCK token rows against VOCAB_BLOCK entries, into
# one int32 buffer small enough to stay in a core's L2 cache (screening.py).
ROW_BLOCK = 1024
VOCAB_BLOCK = 1024

# A batch's token budget where none is given: the server's (`Settings.max_batch_tokens`, which no
# flag sets) and `Encoder.encode`'s. With a backlog each thread runs a batch of its own share of it
# (2,048 tokens on two threads), where BERT-base ran faster per thread than at twice that
# (docs/performance.md, "A backlog runs one batch per thread").
BATCH_TOKENS = 4096
