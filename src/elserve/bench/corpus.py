"""The texts a benchmark runs on, and the tokens every runner is credited with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The corpus shipped beside the checkout (shared/bench/corpus.jsonl), as `make bench` finds it.
_SHARED_CORPUS = Path("shared") / "bench" / "corpus.jsonl"


def default_corpus_path() -> Path | None:
    """`../shared/bench/corpus.jsonl` seen from the checkout (or from the working directory)."""
    checkout = Path(__file__).resolve().parents[3]  # src/elserve/bench/corpus.py -> checkout
    for base in (checkout.parent, Path.cwd().parent, Path.cwd()):
        candidate = base / _SHARED_CORPUS
        if candidate.is_file():
            return candidate
    return None


def read_corpus(path: Path, limit: int | None = None) -> list[str]:
    """Passages of `path`: JSON lines with a `text` field (`.jsonl`, `.json`), else one passage
    per line. Blank lines are skipped; `limit` keeps the first ones."""
    texts: list[str] = []
    as_json = path.suffix in {".jsonl", ".json", ".ndjson"}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(texts) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            if as_json:
                record = json.loads(line)
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"{path}:{number}: a JSON line needs a string field [text]")
                texts.append(text)
            else:
                texts.append(line)
    if not texts:
        raise ValueError(f"no passages in [{path}]")
    return texts


@dataclass(frozen=True)
class Workload:
    """Texts and their token counts under the model's tokenizer (specials in, cut at the window)."""

    texts: list[str]
    token_counts: list[int]

    @classmethod
    def count(cls, texts: list[str], model_dir: Path) -> Workload:
        # Imported here: a runner process that unpickles a Workload (ONNX Runtime's) must not
        # pay for torch, which elserve.runtime loads.
        from elserve.runtime import Tokenizer

        tokenizer = Tokenizer.from_dir(model_dir)
        return cls(texts, [len(e.ids) for e in tokenizer.encode_batch(texts)])

    @property
    def tokens(self) -> int:
        return sum(self.token_counts)

    @property
    def docs(self) -> int:
        return len(self.texts)

    def cycled(self, size: int) -> Workload:
        """The corpus over and over until `size` texts (at least the corpus once)."""
        if size <= len(self.texts):
            return self
        picked = [i % len(self.texts) for i in range(size)]
        return Workload([self.texts[i] for i in picked], [self.token_counts[i] for i in picked])

    def sample(self, size: int) -> Workload:
        """`size` texts spread evenly over the corpus (for tuning a batch size on a few)."""
        if size >= len(self.texts):
            return self
        step = len(self.texts) / size
        picked = [int(i * step) for i in range(size)]
        return Workload([self.texts[i] for i in picked], [self.token_counts[i] for i in picked])
