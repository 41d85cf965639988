"""Small random BERT masked-LM model directories for tests (seeded, so runs repeat).

`build_bert_dir` writes what a real model directory holds (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json), with a WordPiece tokenizer over any vocabulary.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from elserve.bench.base_model import Init, random_weights

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Wide weights for a small model, the MLM bias scaled so that some logits come out positive and
# most negative, as in a trained SPLADE.
SMALL_INIT = Init(
    linear_std=0.1,
    linear_bias_std=0.02,
    norm_std=0.1,
    embedding_std=0.5,
    mlm_bias_mean=-2.0,
    mlm_bias_std=0.5,
    decoder_std=0.3,
)


def default_vocab(words: int = 200) -> list[str]:
    """Specials, every ASCII letter / digit / punctuation mark with its `##` form, entries with
    dots (as BERT's `.`, `...`, `##.`) and `words` more entries."""
    singles = list(string.ascii_lowercase + string.digits + string.punctuation)
    extra = [f"w{i}" for i in range(words)]
    return SPECIALS + singles + [f"##{c}" for c in singles] + ["...", "e.g", "##.."] + extra


def build_bert_dir(
    path: Path,
    *,
    vocab: list[str] | None = None,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 64,
    model_max_length: int | None = None,
    hidden_act: str = "gelu",
    seed: int = 0,
    legacy_norm_names: bool = True,
    bert_prefix: bool = True,
    tied_decoder: bool = True,
    init: Init = SMALL_INIT,
) -> Path:
    """Write a random BERT masked-LM into `path` (created) and return `path`.

    `vocab` is the id -> token list (default `default_vocab()`); it must hold the five BERT
    specials, anywhere (`pad_token_id` follows `[PAD]`). `legacy_norm_names` saves LayerNorm
    as gamma/beta (as the real SPLADE-tiny checkpoint does), `bert_prefix` puts the encoder
    under `bert.`, and `tied_decoder=False` saves a decoder weight of its own.
    """
    vocab = default_vocab() if vocab is None else vocab
    if len(set(vocab)) != len(vocab) or not set(SPECIALS) <= set(vocab):
        raise ValueError("vocab must hold distinct tokens including " + ", ".join(SPECIALS))
    path.mkdir(parents=True, exist_ok=True)
    intermediate = 4 * hidden if intermediate is None else intermediate
    token_id = {token: i for i, token in enumerate(vocab)}
    config = {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": len(vocab),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": hidden_act,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "pad_token_id": token_id["[PAD]"],
        "tie_word_embeddings": tied_decoder,
        "dtype": "float32",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    weights = random_weights(
        config,
        seed,
        init,
        bert_prefix=bert_prefix,
        legacy_norm_names=legacy_norm_names,
        tied_decoder=tied_decoder,
    )
    save_file(weights, str(path / "model.safetensors"))
    max_length = min(max_positions, model_max_length or max_positions)
    _wordpiece(vocab, max_length).save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": model_max_length if model_max_length is not None else max_positions,
        **{f"{name}_token": token for name, token in zip(("pad", "unk", "cls", "sep", "mask"), SPECIALS, strict=True)},
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    return path


def _wordpiece(vocab: list[str], max_length: int) -> Tokenizer:
    ids = {token: i for i, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.enable_truncation(max_length)
    # As in real tokenizer.json files: a padding setting the runtime has to switch off.
    tokenizer.enable_padding(pad_id=ids["[PAD]"], pad_token="[PAD]")
    return tokenizer
