"""bioseq: foundation models for genomic and biological sequences.

Importing ``bioseq`` is cheap: it never imports torch, CUDA kernels or zarr; subpackages load
what they need (``bioseq.models``, ``bioseq.data``, ``bioseq.tokenization`` ...).
"""

__version__ = "0.1.0"
