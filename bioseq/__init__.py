"""bioseq: foundation models for genomic and biological sequences.

Importing ``bioseq`` is cheap: it never imports torch, CUDA kernels or zarr; subpackages load
what they need (``bioseq.models``, ``bioseq.data``, ``bioseq.tokenization`` ...).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``bioseq.embed(model, seqs)`` without importing torch at ``import bioseq``
    if name == "embed":
        from bioseq.embeddings import embed

        return embed
    raise AttributeError(f"module 'bioseq' has no attribute {name!r}")
