"""Text from strings: a word-level tokenizer fitted on the train split only, or a
``tokenizer.json`` loaded from disk (Hugging Face ``tokenizers``, the ``text`` extra), and
pretrained word vectors (GloVe or word2vec text files) for the embedding of its words.

A fitted tokenizer normalises (NFKC, optionally lowercase), splits words from punctuation, keeps
the words seen at least ``min_count`` times in the train split (at most ``max_vocab``, the most
frequent), and maps the others to ``<unk>``. Ids: 0 ``<pad>``, 1 ``<unk>``, then the words."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

TEXT_SPECIALS = ("<pad>", "<unk>")
INSTALL = "pip install 'fuselab[text]' (the Hugging Face tokenizers package)"


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise ConfigError(f"text columns need the tokenizers package: {INSTALL}") from exc
    return tokenizers


def fit_word_tokenizer(
    texts: Iterable[str], min_count: int = 1, lowercase: bool = True, max_vocab: int | None = None
) -> Any:
    """A word-level tokenizer fitted on ``texts`` (the train split's, never val or test)."""
    tk = _tokenizers()
    if int(min_count) < 1:
        raise ConfigError(f"text tokenizer: min_count={min_count} must be >= 1")
    tokenizer = tk.Tokenizer(tk.models.WordLevel(unk_token=TEXT_SPECIALS[1]))
    steps = [tk.normalizers.NFKC()] + ([tk.normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = tk.normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    trainer = tk.trainers.WordLevelTrainer(
        min_frequency=int(min_count),
        special_tokens=list(TEXT_SPECIALS),
        vocab_size=int(max_vocab) + len(TEXT_SPECIALS) if max_vocab else 2**31 - 1,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def load_tokenizer(path: str | Path) -> Any:
    """A ``tokenizer.json`` (any model: word level, BPE, WordPiece), a folder holding one, or
    ``minilm`` (the packaged all-MiniLM-L6-v2's)."""
    tk = _tokenizers()
    if str(path) == "minilm":  # the tokenizer of the packaged all-MiniLM-L6-v2
        from fuselab.data.readers.pretrained_files import resolve_model_dir

        path = resolve_model_dir("minilm")
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ConfigError(
            f"text tokenizer: {p} does not exist; give a tokenizer.json (or its folder), or null to fit one"
        )
    try:
        tokenizer = tk.Tokenizer.from_file(str(p))
    except Exception as exc:  # noqa: BLE001 - a bad file is the user's to fix
        raise ConfigError(f"text tokenizer: {p} is not a tokenizers JSON file: {exc}") from exc
    tokenizer.no_padding()  # fuselab pads batches itself; the true lengths must stay (truncation is kept)
    return tokenizer


def vocabulary(tokenizer: Any) -> list[str]:
    """The token of each id, 0 .. size-1 (ids no token has are shown as ``<unused_i>``)."""
    by_id = {i: t for t, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    size = max(by_id) + 1 if by_id else 0
    return [by_id.get(i, f"<unused_{i}>") for i in range(size)]


def bad_text(value: Any, tokenizer: Any) -> str | None:
    """Why ``value`` cannot be a text sample (None when it can)."""
    if not isinstance(value, str):
        return f"is not a string ({type(value).__name__})"
    if not value.strip():
        return "is empty"
    if not tokenizer.encode(value, add_special_tokens=False).ids:
        return "has no token"
    return None


def batches(values: Sequence[Any], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield [v for v in values[i : i + size] if isinstance(v, str)]


def encode(tokenizer: Any, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text).ids, dtype=np.int64)


# ---- pretrained word vectors -----------------------------------------------------------------


def vector_file_dim(path: str | Path) -> int:
    """The vector size of a GloVe (``word v1 .. vD`` per line) or word2vec text file (a first
    line ``count dim``), read from its first lines."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"word vectors: {p} does not exist; give a GloVe or word2vec text file")
    with p.open(encoding="utf-8", errors="replace") as f:
        first = f.readline().split()
        if len(first) == 2 and all(x.isdigit() for x in first):
            return int(first[1])
        if len(first) < 2:
            raise ConfigError(
                f"word vectors: {p} does not start with 'word v1 ... vD' (GloVe) or 'count dim' (word2vec)"
            )
        return len(first) - 1


def read_word_vectors(path: str | Path, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of ``words`` from a GloVe or word2vec text file, streamed (only the
    vocabulary's vectors are kept): (V, D) float32 and found (V,) bool. A word not in the file
    is looked up lowercased; the special tokens are never looked up."""
    p = Path(path).expanduser()
    dim = vector_file_dim(p)
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        if w in TEXT_SPECIALS or (w.startswith("<") and w.endswith(">")):
            continue
        index.setdefault(w, i)
    lower = {}
    for w, i in index.items():
        lower.setdefault(w.lower(), []).append(i)
    out = np.zeros((len(words), dim), dtype=np.float32)
    found = np.zeros(len(words), dtype=bool)
    exact = np.zeros(len(words), dtype=bool)
    with p.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            word, _, rest = line.rstrip("\n").partition(" ")
            if n == 0 and rest.strip().isdigit() and word.isdigit():
                continue  # word2vec header
            rows = [index[word]] if word in index else []
            rows += [i for i in lower.get(word.lower(), []) if not found[i] and i not in rows]
            if not rows:
                continue
            values = rest.split()
            if len(values) != dim:
                raise ConfigError(
                    f"word vectors: {p} line {n + 1} has {len(values)} values, the file's vectors have {dim}"
                )
            vec = np.asarray(values, dtype=np.float32)
            for i in rows:
                if exact[i]:
                    continue
                out[i], found[i] = vec, True
                exact[i] = word == words[i]
    return out, found
