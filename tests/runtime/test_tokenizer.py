"""Tokenizer: ids with specials, no padding, truncation at the window and its flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tokenizers

from elserve.runtime import ModelFormatError, Tokenizer
from elserve.runtime.tokenizer import wordpiece
from tests.support.model_factory import build_bert_dir


@pytest.fixture(scope="module")
def splade_tokenizer(splade_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(splade_model_dir)


@pytest.mark.parametrize("pieces", [508, 509, 510, 511, 512, 513])
def test_truncation_flag_at_the_window(splade_tokenizer: Tokenizer, pieces: int) -> None:
    # "word" is one word-piece: `pieces` pieces plus [CLS] and [SEP].
    (encoded,) = splade_tokenizer.encode_batch(["word " * pieces])
    assert encoded.is_truncated == (pieces + 2 > 512)
    assert len(encoded.ids) == min(pieces + 2, 512)
    assert encoded.ids[0] == 101 and encoded.ids[-1] == 102  # cut at the end, [SEP] kept


def test_truncation_cuts_inside_a_word(splade_tokenizer: Tokenizer, splade_model_dir: Path) -> None:
    # "supercalifragilistic" is several pieces; the window may end in the middle of it.
    untruncated = tokenizers.Tokenizer.from_file(str(splade_model_dir / "tokenizer.json"))
    untruncated.no_truncation()
    untruncated.no_padding()
    texts = ["supercalifragilistic " * n for n in range(60, 120)] + ["x " * 2000]
    for text, encoded in zip(texts, splade_tokenizer.encode_batch(texts), strict=True):
        full = untruncated.encode(text).ids
        assert encoded.is_truncated == (len(full) > 512)
        assert encoded.ids.tolist() == (full if len(full) <= 512 else [*full[:511], 102])


def test_short_window_of_a_small_model(tmp_path: Path) -> None:
    # max_position_embeddings 64, tokenizer_config says 16: the smaller one wins.
    tokenizer = Tokenizer.from_dir(build_bert_dir(tmp_path, max_positions=64, model_max_length=16))
    assert tokenizer.max_length == 16
    texts = [" ".join(["a"] * n) for n in (13, 14, 15, 16)]
    encoded = tokenizer.encode_batch(texts)
    assert [len(e.ids) for e in encoded] == [15, 16, 16, 16]
    assert [e.is_truncated for e in encoded] == [False, False, True, True]


def test_window_is_max_positions_without_tokenizer_config_limit(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path, max_positions=24)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = int(1e30)  # transformers' "no limit" sentinel
    config_path.write_text(json.dumps(config))
    assert Tokenizer.from_dir(model_dir).max_length == 24
    config_path.unlink()
    assert Tokenizer.from_dir(model_dir).max_length == 24


def test_missing_tokenizer_is_refused(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ModelFormatError, match=r"tokenizer.json or vocab.txt"):
        Tokenizer.from_dir(model_dir)


def test_batch_is_not_padded(splade_tokenizer: Tokenizer) -> None:
    # The real tokenizer.json asks for BatchLongest padding; inference must not get it.
    encoded = splade_tokenizer.encode_batch(["a", "a b c d e f g", ""])
    assert [e.ids.tolist() for e in encoded] == [
        [101, 1037, 102],
        [101, 1037, 1038, 1039, 1040, 1041, 1042, 1043, 102],
        [101, 102],
    ]
    assert all(e.ids.dtype == np.int32 and not e.is_truncated for e in encoded)


def test_vocab_maps_ids_to_tokens(splade_tokenizer: Tokenizer) -> None:
    vocab = splade_tokenizer.vocab
    assert len(vocab) == 30522
    assert vocab[0] == "[PAD]" and vocab[100] == "[UNK]" and vocab[101] == "[CLS]" and vocab[102] == "[SEP]"
    assert vocab[1037] == "a" and "##s" in vocab and "." in vocab
    assert len(set(vocab)) == len(vocab)


@pytest.mark.parametrize(
    "text",
    [
        # (the reference tokenizes all of it, so these stay far under issue 15's 5 MB)
        "word " * 40_000,
        "supercalifragilistic " * 5_000,
        "a,b.c;" * 10_000,  # punctuation: one piece per character, no whitespace at all
        "x" * 100_000,  # one giant word: a single [UNK]
        ("hello" + " " * 5000) * 40,  # long whitespace runs: the first prefixes hold too few pieces
        "Ünïcödé façade naïve " * 5_000,  # accents stripped by normalization
        "短い日本語のテキスト" * 5_000,  # CJK: each character its own word
    ],
)
def test_long_texts_are_cut_before_tokenizing_with_the_same_ids(
    splade_tokenizer: Tokenizer, splade_model_dir: Path, text: str
) -> None:
    untruncated = tokenizers.Tokenizer.from_file(str(splade_model_dir / "tokenizer.json"))
    untruncated.no_padding()
    untruncated.enable_truncation(512, stride=0, strategy="longest_first", direction="right")
    full = untruncated.encode(text)
    (encoded,) = splade_tokenizer.encode_batch([text])
    assert encoded.ids.tolist() == full.ids
    assert encoded.is_truncated == (len(full.overflowing) > 0)


def test_a_batch_mixing_long_and_short_texts_keeps_its_order(splade_tokenizer: Tokenizer) -> None:
    texts = ["short one", "word " * 100_000, "another short", "x y " * 10]
    encoded = splade_tokenizer.encode_batch(texts)
    alone = [splade_tokenizer.encode_batch([t])[0] for t in texts]
    assert [e.ids.tolist() for e in encoded] == [a.ids.tolist() for a in alone]
    assert [e.is_truncated for e in encoded] == [False, True, False, False]


@pytest.mark.parametrize("words", [1, 300, 1000])
def test_length_counts_every_token_before_truncation(splade_tokenizer: Tokenizer, words: int) -> None:
    # What `truncate: none` compares with the window (trained-model `_infer`): [CLS] + pieces + [SEP].
    text = " ".join(["fox"] * words)
    assert splade_tokenizer.length(text) == words + 2
    encoded = splade_tokenizer.encode_batch([text])[0]
    assert encoded.is_truncated == (words + 2 > splade_tokenizer.max_length)


@pytest.mark.parametrize(
    ("vocab", "pad"),
    [
        (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], 0),
        (["[UNK]", "[CLS]", "[SEP]", "a", "[PAD]"], 4),  # wherever the vocabulary puts it
        (["[UNK]", "[CLS]", "[SEP]", "a"], 0),  # none: the first id
    ],
)
def test_a_batch_is_padded_with_the_pad_tokens_id(vocab: list[str], pad: int) -> None:
    assert Tokenizer(wordpiece(vocab, lowercase=True, with_special_tokens=True), max_length=8).pad_id == pad
