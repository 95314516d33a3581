"""``get_tokenizer(name_or_path)``: named presets built in code, shipped definition files, paths."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from bioseq.tokenization.base import Tokenizer, load_tokenizer
from bioseq.tokenization.char import dna_char, protein_esm, rna_char
from bioseq.tokenization.multiomic import multiomic

#: definition files installed with the package (copies of the repository's ``tokenizers/``)
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tokenizers"

_PRESETS: dict[str, Callable[[], Tokenizer]] = {
    "dna-char": dna_char,
    "dna-char-iupac": lambda: dna_char("keep"),
    "rna-char": rna_char,
    "protein-esm": protein_esm,
    "multiomic": multiomic,
}
_KMER = re.compile(r"^dna-kmer-([1-8])(-nonoverlap)?$")


def _kmer(name: str) -> Tokenizer | None:
    m = _KMER.match(name)
    if not m:
        return None
    from bioseq.tokenization.kmer import kmer_tokenizer

    return kmer_tokenizer(int(m.group(1)), overlapping=m.group(2) is None)


def available_tokenizers() -> list[str]:
    """Names :func:`get_tokenizer` accepts (k-mer names for k = 1..8 are all valid; 6 is listed)."""
    shipped = {p.stem for p in ASSET_DIR.glob("*.json")} if ASSET_DIR.is_dir() else set()
    return sorted(set(_PRESETS) | {"dna-kmer-6", "dna-kmer-6-nonoverlap"} | shipped)


def get_tokenizer(name_or_path: str | os.PathLike) -> Tokenizer:
    """A tokenizer by preset name, shipped definition name, or path to a tokenizer file/folder.

    Raises:
        KeyError: the name is neither a preset, a shipped file nor an existing path.
    """
    name = str(name_or_path)
    if name in _PRESETS:
        return _PRESETS[name]()
    tok = _kmer(name)
    if tok is not None:
        return tok
    path = Path(name)
    if path.exists():
        return load_tokenizer(path)
    shipped = ASSET_DIR / f"{name}.json"
    if shipped.exists():
        return load_tokenizer(shipped)
    raise KeyError(f"unknown tokenizer {name!r}: not a file and not one of {available_tokenizers()}")
