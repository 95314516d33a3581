"""Tokenizers for DNA, RNA, protein and joint multi-omic sequences, all with one API.

    from bioseq.tokenization import get_tokenizer
    tok = get_tokenizer("dna-char")        # HyenaDNA layout: A=7 C=8 G=9 T=10 N=11, pad 4, mask 3
    ids = tok.encode("ACGTN")              # int64 ids (+ [SEP] per HyenaDNA's template)
    ids = tok.encode_codes(window)         # genome-store uint8 codes -> ids (no specials)
    batch = tok.encode_batch(seqs, padding="longest", pad_to_multiple_of=8, return_tensors="pt")
    tok.reverse_complement(ids); tok.complement_map; tok.regular_token_ids
    tok.save("tok.json"); load_tokenizer("tok.json")

Named tokenizers (:func:`get_tokenizer`): ``dna-char``, ``dna-char-iupac``, ``rna-char``,
``dna-kmer-<k>`` / ``dna-kmer-<k>-nonoverlap`` (k = 1..8), ``protein-esm``, ``multiomic``, plus
every definition file shipped in ``bioseq/assets/tokenizers/`` (e.g. ``dna-bpe-4096``) and any
path to a tokenizer file. The same files live in the repository's top-level ``tokenizers/``.
"""

from bioseq.tokenization.base import (
    BatchEncoding,
    Tokenizer,
    TokenizerError,
    load_tokenizer,
    register_tokenizer,
    tokenizer_from_dict,
)
from bioseq.tokenization.bpe import BPETokenizer, train_bpe
from bioseq.tokenization.char import CharTokenizer, dna_char, protein_esm, rna_char
from bioseq.tokenization.kmer import KmerTokenizer, kmer_tokenizer
from bioseq.tokenization.multiomic import MultiOmicTokenizer, multiomic
from bioseq.tokenization.registry import ASSET_DIR, available_tokenizers, get_tokenizer

__all__ = [
    "ASSET_DIR",
    "BPETokenizer",
    "BatchEncoding",
    "CharTokenizer",
    "KmerTokenizer",
    "MultiOmicTokenizer",
    "Tokenizer",
    "TokenizerError",
    "available_tokenizers",
    "dna_char",
    "get_tokenizer",
    "kmer_tokenizer",
    "load_tokenizer",
    "multiomic",
    "protein_esm",
    "register_tokenizer",
    "rna_char",
    "tokenizer_from_dict",
    "train_bpe",
]
