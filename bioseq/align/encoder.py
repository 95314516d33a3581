"""The read/fragment encoder: token ids, batched embedding and the encoder fingerprint.

The encoder is any :class:`bioseq.models.Embedder` (a backbone plus mean pooling and a projection,
L2-normalised per sequence). Sequences use the project's DNA vocabulary (HyenaDNA character ids:
A=7 C=8 G=9 T=10 N=11, pad 4).

Embedding runs in fixed-size micro-batches padded to a fixed length, so a sequence's embedding is
bitwise the same whatever else shares its batch: this is what makes ``bioseq align`` output
identical for any ``-t`` or ``--batch-size``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PAD_ID = 4
#: alphabet code (0-15) -> token id; every ambiguity code maps to N
CODE_TO_ID = np.full(256, 11, dtype=np.int64)
CODE_TO_ID[:4] = [7, 8, 9, 10]
CODE_TO_ID[0x80:0x84] = [7, 8, 9, 10]

#: where the default weights live inside the package
DEFAULT_ENCODER = Path(__file__).resolve().parents[1] / "assets" / "esa"


def tokens(codes_list: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad/truncate code arrays to ``length`` -> ``(ids (B, length) int64, mask (B, length) bool)``."""
    ids = np.full((len(codes_list), length), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(codes_list), length), dtype=bool)
    for i, c in enumerate(codes_list):
        n = min(len(c), length)
        ids[i, :n] = CODE_TO_ID[c[:n]]
        mask[i, :n] = True
    return ids, mask


class Encoder:
    """A read/fragment encoder: its identity now, the torch model on first use.

    ``bioseq align`` embeds only the reads its seeds do not place, often none, so the model (and
    torch) load when :meth:`embed` first needs them; the fingerprint check needs only the files.

    Attributes:
        fingerprint: SHA-256 over ``config.json`` and ``model.safetensors``; stored in every index so
            an index is never searched with embeddings from a different model.
        path: the checkpoint folder.
        micro_batch: sequences per forward pass (fixed; see the module docstring).
        threads: torch intra-op threads set when the model loads (None: leave torch's default).
    """

    def __init__(self, path: Path, fingerprint: str, config: dict, micro_batch: int = 64,
                 threads: int | None = None, model: torch.nn.Module | None = None) -> None:
        self.path, self.fingerprint, self.config = path, fingerprint, config
        self.micro_batch, self.threads, self._model = micro_batch, threads, model

    @property
    def model(self) -> torch.nn.Module:
        """The :class:`bioseq.models.Embedder`, in eval mode (loaded on first access)."""
        if self._model is None:
            import torch

            from bioseq.io.errors import FileFormatError, UserError, load_errors
            from bioseq.models import Embedder

            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                if self.config.get("model_type") == "conv_encoder":
                    from bioseq.align.conv_encoder import ConvEncoder

                    self._model = ConvEncoder.from_pretrained(self.path)
                else:
                    self._model = Embedder.from_pretrained(self.path).eval()
            except UserError:
                raise
            except load_errors() as e:
                raise FileFormatError(f"{self.path}: cannot load the encoder checkpoint "
                                      f"({type(e).__name__}: {e})") from e
        return self._model

    @property
    def dim(self) -> int:
        if self.config.get("model_type") == "conv_encoder":
            return int(self.config["dim"])
        return int(self.config.get("head", {}).get("dim") or self.config["backbone"]["d_model"])

    def embed(self, codes_list: list[np.ndarray], length: int) -> np.ndarray:
        """Embed sequences padded to ``length`` -> ``(N, dim)`` float32, rows L2-normalised."""
        import torch

        out = np.empty((len(codes_list), self.dim), dtype=np.float32)
        mb = self.micro_batch
        with torch.inference_mode():
            for s in range(0, len(codes_list), mb):
                chunk = codes_list[s : s + mb]
                n = len(chunk)
                # pad the last micro-batch with copies so every forward sees the same shape
                chunk = chunk + [chunk[-1]] * (mb - n)
                ids, mask = tokens(chunk, length)
                emb = self.model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).embeddings
                out[s : s + n] = emb[:n].float().numpy()
        return out


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a checkpoint's ``config.json`` + ``model.safetensors`` (first 16 hex digits)."""
    path = Path(path)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update((path / name).read_bytes())
    return h.hexdigest()[:16]


def load_encoder(path: str | Path | None = None, micro_batch: int = 64, threads: int | None = None) -> Encoder:
    """Open an encoder checkpoint (default: ``$BIOSEQ_ESA_ENCODER`` if set, else the weights
    shipped in ``bioseq/assets/esa``); the model itself loads on first use."""
    if path is None:
        path = os.environ.get("BIOSEQ_ESA_ENCODER") or DEFAULT_ENCODER
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: no encoder checkpoint (config.json missing)")
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as e:
        from bioseq.io.errors import FileFormatError

        raise FileFormatError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") not in ("embedder", "conv_encoder"):
        cfg = cfg if isinstance(cfg, dict) else {}
        raise ValueError(f"{path}: checkpoint is a {cfg.get('model_type')!r}, not an embedder or conv_encoder")
    return Encoder(path, fingerprint(path), cfg, micro_batch=micro_batch, threads=threads)
