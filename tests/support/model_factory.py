"""Small random masked-LM model directories for tests (seeded, so runs repeat).

`build_bert_dir` writes what a real model directory holds (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json), with a WordPiece tokenizer over any vocabulary;
`build_distilbert_dir` the same for transformers' DistilBertForMaskedLM; `build_torchscript_dir`
a BERT or DistilBERT traced as eland traces it, in Elastic's layout (model.pt, vocab.json,
trained_model_config.json).
"""

from __future__ import annotations

import json
import string
import warnings
from pathlib import Path

import torch
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


def _randomise(model: torch.nn.Module, seed: int, init: Init) -> None:
    """Wide seeded weights for a transformers model (as `SMALL_INIT` gives `build_bert_dir`): some
    logits positive, most negative."""
    g = torch.Generator().manual_seed(seed)

    def normal(p: torch.Tensor, std: float, mean: float = 0.0) -> None:
        p.copy_(torch.randn(p.shape, generator=g) * std + mean)

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                normal(p, init.norm_std, 1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("vocab_projector.bias") or name.endswith("predictions.bias"):
                normal(p, init.mlm_bias_std, init.mlm_bias_mean)
            elif "embeddings" in name:
                normal(p, init.embedding_std)
            elif name.endswith("bias"):
                normal(p, init.linear_bias_std)
            else:
                normal(p, init.linear_std)


def _write_tokenizer(
    path: Path, vocab: list[str], max_length: int, model_max_length: int, vocab_txt_only: bool
) -> None:
    if vocab_txt_only:
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    else:
        _wordpiece(vocab, max_length).save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": model_max_length,
        **{f"{name}_token": token for name, token in zip(("pad", "unk", "cls", "sep", "mask"), SPECIALS, strict=True)},
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")


def build_distilbert_dir(
    path: Path,
    *,
    vocab: list[str] | None = None,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    intermediate: int | None = None,
    max_positions: int = 64,
    sinusoidal: bool = False,
    vocab_txt_only: bool = False,
    seed: int = 0,
    init: Init = SMALL_INIT,
) -> Path:
    """Write a random DistilBertForMaskedLM (transformers' own class, saved by `save_pretrained`:
    `distilbert.*`, `vocab_transform`, `vocab_layer_norm`, `vocab_projector` tied to the word
    embeddings) into `path` and return it. `sinusoidal` sets `sinusoidal_pos_embds`;
    `vocab_txt_only` writes `vocab.txt` instead of `tokenizer.json`."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    vocab = default_vocab() if vocab is None else vocab
    path.mkdir(parents=True, exist_ok=True)
    config = DistilBertConfig(
        vocab_size=len(vocab),
        dim=hidden,
        n_layers=layers,
        n_heads=heads,
        hidden_dim=4 * hidden if intermediate is None else intermediate,
        max_position_embeddings=max_positions,
        sinusoidal_pos_embds=sinusoidal,
        pad_token_id=vocab.index("[PAD]"),
        architectures=["DistilBertForMaskedLM"],
    )
    torch.manual_seed(seed)
    model = DistilBertForMaskedLM(config).eval()
    _randomise(model, seed, init)
    if sinusoidal:  # fixed positions, as the DistilBERT paper's code creates them (the checkpoint stores them)
        angle = torch.arange(max_positions, dtype=torch.float64)[:, None] / torch.pow(
            10000.0, 2 * (torch.arange(hidden, dtype=torch.float64) // 2) / hidden
        )
        with torch.no_grad():
            weight = model.distilbert.embeddings.position_embeddings.weight
            weight[:, 0::2] = torch.sin(angle[:, 0::2]).float()
            weight[:, 1::2] = torch.cos(angle[:, 1::2]).float()
    model.save_pretrained(path)
    _write_tokenizer(path, vocab, max_positions, max_positions, vocab_txt_only)
    return path


class _DistilBertWrapper(torch.nn.Module):
    """eland's DistilBERT wrapper: the four inputs Elasticsearch's BERT tokenizer gives, two used."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self._model = model

    def forward(self, input_ids, attention_mask, _token_type_ids, _position_ids):
        return (self._model(input_ids=input_ids, attention_mask=attention_mask).logits,)


class _BertWrapper(torch.nn.Module):
    """The four inputs by name into transformers' BertForMaskedLM (eland passes them positionally
    to the model itself; names keep this independent of transformers' argument order)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self._hf_model = model

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
        # `(logits,)`, as a model loaded with transformers 4's `torchscript=True` answers.
        output = self._hf_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids
        )
        return (output.logits,)


class _PooledWrapper(torch.nn.Module):
    """A model that pools itself, as Elastic's ELSER TorchScript does: `(texts, vocab)` SPLADE weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
        logits = self.inner(input_ids, attention_mask, token_type_ids, position_ids)[0]
        weights = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1)
        return torch.max(weights, dim=1).values


def torchscript_reference(path: Path) -> Path:
    """The Hugging Face directory `build_torchscript_dir(path)` traced its model from."""
    return path.parent / f"{path.name}-hf"


def build_torchscript_dir(
    path: Path,
    *,
    architecture: str = "bert",
    pooled: bool = False,
    frozen: bool = False,
    do_lower_case: bool = True,
    max_sequence_length: int | None = None,
    **model_kwargs: object,
) -> Path:
    """A small random BERT (or DistilBERT: `architecture="distilbert"`) masked-LM traced to TorchScript
    as eland traces it for `text_expansion` (transformers' `...ForMaskedLM` answering `(logits,)`, the
    four inputs `input_ids, attention_mask, token_type_ids, position_ids`, DistilBERT in eland's
    wrapper, traced on one text padded to the window), written into `path` in the Elastic layout
    (`model.pt`, `vocab.json`, `trained_model_config.json`); its Hugging Face directory is at
    `torchscript_reference(path)`. `pooled` traces a model that applies SPLADE pooling itself
    (output `(texts, vocab)`, as Elastic's ELSER), instead of answering the logits. `frozen` saves it
    as eland 9 does, `torch.jit.freeze`d: no state, the weights are constants of its graph."""
    from transformers import AutoModelForMaskedLM

    reference = torchscript_reference(path)
    if architecture == "distilbert":
        build_distilbert_dir(reference, **model_kwargs)
    else:
        build_bert_dir(reference, **model_kwargs)
    config = json.loads((reference / "config.json").read_text())
    window = max_sequence_length or config["max_position_embeddings"]
    model = AutoModelForMaskedLM.from_pretrained(reference).eval()
    wrapped: torch.nn.Module = _DistilBertWrapper(model) if architecture == "distilbert" else _BertWrapper(model)
    if pooled:
        wrapped = _PooledWrapper(wrapped)
    vocab = model_kwargs.get("vocab") or default_vocab()
    assert isinstance(vocab, list)
    tokenizer = _wordpiece(vocab, window)
    tokenizer.enable_padding(pad_id=vocab.index("[PAD]"), pad_token="[PAD]", length=window)
    encoding = tokenizer.encode("This is an example sentence.")
    inputs = (
        torch.tensor([encoding.ids]),
        torch.tensor([encoding.attention_mask]),
        torch.zeros(1, window, dtype=torch.long),
        torch.arange(window, dtype=torch.long),
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' tracer warnings: the trace is checked in the tests
        traced = torch.jit.trace(wrapped, example_inputs=inputs, check_trace=False)
        if frozen:
            traced = torch.jit.freeze(traced.eval())
    path.mkdir(parents=True, exist_ok=True)
    traced.save(str(path / "model.pt"))
    (path / "vocab.json").write_text(json.dumps({"vocabulary": vocab}), encoding="utf-8")
    trained_model_config = {
        "description": f"random {architecture} SPLADE model for tests",
        "model_type": "pytorch",
        "inference_config": {
            "text_expansion": {
                "tokenization": {
                    "bert": {
                        "do_lower_case": do_lower_case,
                        "with_special_tokens": True,
                        "max_sequence_length": window,
                        "truncate": "first",
                        "span": -1,
                    }
                }
            }
        },
        "input": {"field_names": ["text_field"]},
    }
    (path / "trained_model_config.json").write_text(json.dumps(trained_model_config, indent=2), encoding="utf-8")
    return path
