"""Genome stores and training windows.

- :mod:`bioseq.data.store`: the Zarr v3 genome store (:func:`build_store`, :class:`GenomeStore`).
- :mod:`bioseq.data.sampling`: the deterministic window sampler (numpy only).
- :mod:`bioseq.data.dataset`: the torch Dataset and distributed Sampler the recipes use.

Names are imported lazily so ``import bioseq.data`` stays cheap (no zarr, no torch).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_store": "store",
    "GenomeStore": "store",
    "ContigInfo": "store",
    "StoreFormatError": "store",
    "StoreIntegrityError": "store",
    "FORMAT_NAME": "store",
    "FORMAT_VERSION": "store",
    "WindowSampler": "sampling",
    "Windows": "sampling",
    "Window": "sampling",
    "GenomeWindowDataset": "dataset",
    "DistributedWindowSampler": "dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bioseq.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'bioseq.data' has no attribute {name!r}")
