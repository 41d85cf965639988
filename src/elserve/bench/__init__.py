"""`elserve bench`: elserve's encoder, in-process and over HTTP, against its peers on one corpus.

The peers (sentence-transformers, ONNX Runtime) come with the optional extra `bench`; every
runner sees the same texts, and every figure counts the same tokens (the model's tokenizer,
specials included, cut at the model's window), so the rows of one run compare directly.
"""
