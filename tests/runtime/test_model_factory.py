"""The random-model factory of tests/support/model_factory.py builds models the runtime can run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from elserve.runtime import Encoder, TokenNames, to_token_weights
from tests.runtime.reference import assert_matches_reference, reference_model, reference_weights
from tests.support.model_factory import SPECIALS, build_bert_dir


def _odd_vocab() -> list[str]:
    # 1,009 entries (prime: no vocabulary block divides it), specials scattered, accents, CJK,
    # dotted entries, a bare "##", and word-pieces of non-Latin scripts.
    words = ["café", "crème", "東", "京", "привет", "##ß", "e.g", "..", "##", "naïve", "ü", "##ü", "✓"]
    words += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words += [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    words += [f"tok{i}" for i in range(1009 - len(words) - len(SPECIALS))]
    random.Random(5).shuffle(words)
    for position, special in zip((17, 3, 400, 999, 0), SPECIALS, strict=True):
        words.insert(position, special)
    return words


def test_odd_vocabulary_model_runs_and_matches_transformers(tmp_path: Path) -> None:
    vocab = _odd_vocab()
    assert len(vocab) == 1009
    model_dir = build_bert_dir(tmp_path, vocab=vocab, hidden=20, heads=5, max_positions=40, seed=11)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["vocab_size"] == 1009 and config["pad_token_id"] == vocab.index("[PAD]") != 0

    encoder = Encoder.load(model_dir)
    assert encoder.vocab == vocab and encoder.max_length == 40
    texts = ["Café crème naïve", "東京 привет ✓", "e.g. tok1 tok22", "", "unknownword " * 30, "ü ß", "Ω 😀"]
    encoded = encoder.tokenize(texts)
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    assert all(e.ids[0] == cls and e.ids[-1] == sep for e in encoded)
    assert [e.is_truncated for e in encoded] == [False, False, False, False, True, False, False]
    assert encoded[6].ids.tolist() == [cls, vocab.index("[UNK]"), vocab.index("[UNK]"), sep]

    reference = reference_model(model_dir)
    ids = [e.ids for e in encoded]
    for vector, want in zip(encoder.encode_ids(ids), reference_weights(reference, ids), strict=True):
        assert_matches_reference(vector, want)
        rendered = to_token_weights(vector, TokenNames(vocab))
        assert all("." not in token for token in rendered)
    assert set(np.concatenate([v.indices for v in encoder.encode_ids(ids)]).tolist()) <= set(range(1009))


def test_factory_is_seeded(tmp_path: Path) -> None:
    first = (build_bert_dir(tmp_path / "a", seed=3) / "model.safetensors").read_bytes()
    again = (build_bert_dir(tmp_path / "b", seed=3) / "model.safetensors").read_bytes()
    other = (build_bert_dir(tmp_path / "c", seed=4) / "model.safetensors").read_bytes()
    assert first == again != other
