"""Sequence embeddings from any bioseq checkpoint: ``bioseq.embed(model, seqs)`` and ``bioseq embed``.

    import bioseq
    emb = bioseq.embed("runs/demo/final", ["ACGTTGCA...", "GGCTA..."])          # (N, d) float32
    tok = bioseq.embed(model, seqs, tokenizer="dna-char", per_token=True)      # list of (L_i, d)

How a sequence becomes one vector (the same for DNA, RNA and proteins; the tokenizer comes from
the checkpoint's ``tokenizer.json``):

1. The sequence is tokenized once without special tokens, then cut into windows of at most
   ``window`` tokens (the model's training window by default) that overlap by ``overlap`` tokens;
   each window gets the tokenizer's special tokens (``[SEP]``, ``<cls>``/``<eos>`` ...) back.
2. Windows of similar length are batched together (length bucketing: little padding, so the
   cost is the number of real tokens) and run through the backbone.
3. Pooling of each window's hidden states ``(L, d) -> (d,)``:
   - ``mean`` (the default, any backbone): mean over the window's sequence tokens (special tokens
     and padding excluded). It works for causal and bidirectional models alike.
   - ``cls``: the hidden state of the first token, for bidirectional backbones whose tokenizer
     puts a special token first (``protein-esm``'s ``<cls>``); refused for causal backbones,
     whose first position has seen nothing.
   - ``last``: the hidden state of the last real token, for causal backbones (the one position
     that has seen the whole window); refused for bidirectional ones.
4. Windows are combined by their mean weighted by the number of sequence tokens each holds, so a
   short last window counts for what it covers. Without overlap this is exactly the token mean.
5. ``rc=True`` (nucleotide tokenizers) also embeds the reverse complement of every window and
   averages the two: the result is the same for a sequence and its reverse complement.

``per_token=True`` returns the hidden state of every sequence token instead (positions covered
by several windows get the mean of their windows' states; with ``rc`` the reverse strand's states
are flipped back onto the forward positions first).

Memory stays bounded for any input size: records are read, embedded and handed on in chunks of
about ``chunk_tokens`` tokens; only per-token output of a single huge record holds that record's
``(L, d)`` states at once. Output is always in input order.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

POOLINGS = ("mean", "cls", "last")
FORMATS = ("npy", "parquet", "zarr")
DEFAULT_WINDOW = 1024


class EmbedError(ValueError):
    """Bad input to :func:`embed` (a record the tokenizer rejects, an unusable option, a bad file)."""


@dataclass
class Embedding:
    """One embedded record: its name, its length in tokens and its ``(d,)`` or ``(L, d)`` vector(s)."""

    name: str
    n_tokens: int
    vector: np.ndarray


# ----------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------
def read_fasta_text(path: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """Stream ``(name, sequence)`` from a FASTA file of any alphabet (DNA, RNA, protein).

    Plain, gzip, bgzip, xz and bz2 input is detected from its bytes. Raises :class:`EmbedError`
    for an empty file, text before the first header, an empty name or an empty record.
    """
    from bioseq.io.compression import open_binary

    name, parts, line_no, seen = None, [], 0, False
    with open_binary(path) as raw:
        for line_no, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if name is not None:
                    yield _finish_record(path, name, parts)
                fields = line[1:].split(None, 1)
                if not fields:
                    raise EmbedError(f"{path}: line {line_no}: empty record name in header '>'")
                name, parts, seen = fields[0], [], True
            elif name is None:
                raise EmbedError(f"{path}: line {line_no}: sequence before the first '>' header (not FASTA)")
            else:
                parts.append(line.replace(" ", "").replace("\t", ""))
    if name is not None:
        yield _finish_record(path, name, parts)
    if not seen:
        raise EmbedError(f"{path}: no FASTA records (empty file?)")


def _finish_record(path, name: str, parts: list[str]) -> tuple[str, str]:
    seq = "".join(parts)
    if not seq:
        raise EmbedError(f"{path}: record {name!r} has an empty sequence")
    return name, seq


def _as_records(seqs: Any) -> Iterator[tuple[str, str]]:
    """Accept strings, ``(name, seq)`` pairs or objects with ``.name`` and ``.sequence``."""
    if isinstance(seqs, (str, bytes)):
        seqs = [seqs]
    for i, s in enumerate(seqs):
        if isinstance(s, (str, bytes)):
            yield f"seq{i}", s.decode() if isinstance(s, bytes) else s
        elif isinstance(s, tuple) and len(s) == 2:
            yield str(s[0]), str(s[1])
        elif hasattr(s, "sequence"):
            yield str(getattr(s, "name", f"seq{i}")), s.sequence
        else:
            raise EmbedError(f"sequence {i}: expected a string, a (name, sequence) pair or a record, got {type(s).__name__}")


# ----------------------------------------------------------------------------------------------
# model and tokenizer
# ----------------------------------------------------------------------------------------------
class _ModalityView:
    """A joint multi-omic tokenizer seen as one of its modalities, so that windows embed like any
    single-alphabet tokenizer: records encode to bare bodies and every window is rebuilt as
    ``[CLS] <modality> body [SEP]``, the layout the multi-omic masked LMs are trained on (so a
    window in the middle of a long protein still carries its tag)."""

    def __init__(self, tok: Any, modality: str) -> None:
        if modality not in tok.modalities:
            raise EmbedError(f"tokenizer {tok.name!r} has no modality {modality!r}; it knows {list(tok.modalities)}")
        self._tok, self.modality = tok, modality
        self._prefix = np.array([tok.cls_token_id, tok.tag_ids[modality]], dtype=np.int64)
        self._suffix = np.array([tok.sep_token_id], dtype=np.int64)
        self.template = {"prefix": ["cls", modality], "suffix": ["sep"]}  # the engine reads the lengths
        self.complement_map = None if modality == "protein" else getattr(tok, "complement_map", None)
        self.name = f"{tok.name}:{modality}"

    def encode(self, seq: Any, add_special_tokens: bool = False) -> np.ndarray:
        body = self._tok.encode_body(seq, self.modality)
        return np.concatenate([self._prefix, body, self._suffix]) if add_special_tokens else body

    def apply_template(self, body: np.ndarray) -> np.ndarray:
        return np.concatenate([self._prefix, np.asarray(body, dtype=np.int64), self._suffix])

    def __getattr__(self, name: str) -> Any:  # vocab_size, pad, special ids: the joint tokenizer's
        return getattr(self._tok, name)


def load_model_and_tokenizer(model: Any, tokenizer: Any = None, map_location: str = "cpu",
                             modality: str | None = None):
    """Resolve ``model`` (a checkpoint folder, a shipped model name, or a loaded model) and its
    tokenizer (``tokenizer`` if given: a name, a file or a Tokenizer; else the checkpoint's
    ``tokenizer.json``). Returns ``(model, tokenizer, source_dir or None)``."""
    from bioseq.models import load_pretrained
    from bioseq.tokenization import MultiOmicTokenizer, Tokenizer, get_tokenizer

    if isinstance(tokenizer, _ModalityView):  # a view handed back: its joint tokenizer and modality
        tokenizer, modality = tokenizer._tok, modality or tokenizer.modality
    source = None
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        try:
            model = load_pretrained(model, map_location=map_location)
        except (FileNotFoundError, KeyError, ValueError) as e:  # no folder, unknown name, bad checkpoint
            msg = str(e).strip('"')
            raise EmbedError(msg if str(source) in msg else f"model {source}: {msg}") from None
        # a shipped name resolves to a folder; the loader records it where it can
        source = Path(getattr(model, "source_dir", None) or getattr(model, "name_or_path", None) or source)
    if tokenizer is None and source is not None and (source / "tokenizer.json").exists():
        tokenizer = source / "tokenizer.json"
    if tokenizer is None:
        tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise EmbedError(f"{source or 'model'}: no tokenizer.json beside the checkpoint; pass a tokenizer "
                         "(e.g. tokenizer='dna-char' / --tokenizer dna-char)")
    if not isinstance(tokenizer, Tokenizer):
        try:
            tokenizer = get_tokenizer(tokenizer)
        except KeyError as e:
            raise EmbedError(str(e).strip('"')) from None
    vocab = model.backbone.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise EmbedError(f"tokenizer {tokenizer.name!r} has {tokenizer.vocab_size} tokens but the model only "
                         f"{vocab}: not the tokenizer it was trained with")
    if isinstance(tokenizer, MultiOmicTokenizer):  # the checkpoint's default modality unless told
        tokenizer = _ModalityView(tokenizer, modality or tokenizer.default_modality)
    elif modality is not None:
        raise EmbedError(f"modality {modality!r} applies to multi-omic tokenizers only; {tokenizer.name!r} has one alphabet")
    return model, tokenizer, source


def training_window(model, source: Path | None) -> int:
    """The window a checkpoint was trained on: ``data.window`` of the run's recipe config (the
    folder above ``final/``), else the backbone's ``l_max``, else :data:`DEFAULT_WINDOW`."""
    if source is not None:
        for cfg_path in (source / "recipe_config.json", source.parent / "recipe_config.json"):
            if cfg_path.exists():
                try:
                    w = json.loads(cfg_path.read_text()).get("data", {}).get("window")
                    if w:
                        return int(w)
                except (ValueError, AttributeError):
                    pass
    return int(getattr(model.backbone.config, "l_max", 0) or DEFAULT_WINDOW)


def default_pooling(model) -> str:
    """``mean`` for every backbone kind (see the module docstring for why, and for cls / last)."""
    return "mean"


def _check_pooling(pooling: str, model, tokenizer) -> None:
    if pooling not in POOLINGS:
        raise EmbedError(f"unknown pooling {pooling!r}; use one of {list(POOLINGS)}")
    causal = model.backbone.is_causal
    if pooling == "cls":
        if causal:
            raise EmbedError("pooling 'cls' needs a bidirectional backbone: a causal model's first token has seen "
                             "nothing (use 'last' or 'mean')")
        if not tokenizer.template["prefix"]:
            raise EmbedError(f"pooling 'cls' needs a tokenizer that puts a special token first; {tokenizer.name!r} "
                             "has none (use 'mean')")
    if pooling == "last" and not causal:
        raise EmbedError("pooling 'last' is for causal backbones; this one is bidirectional (use 'mean' or 'cls')")


# ----------------------------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------------------------
@dataclass
class _Window:
    rec: int  # index of the record inside the chunk
    start: int  # first body token covered
    end: int


def sliding_windows(n: int, body: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` covering ``0..n``, each ``body`` long, at most ``stride``
    apart, spread evenly from flush-left to flush-right (no short sliver at the end).

    The placement is mirror-symmetric (window ``i`` from the left is window ``i`` from the right
    reflected), so the windows of a reverse complement are the reverse complements of the
    windows: ``rc`` averaging is then exactly strand-invariant for sequences of any length.
    """
    if n <= body:
        return [(0, n)]
    span = n - body
    k = -(-span // stride) + 1  # windows needed so consecutive starts are <= stride apart
    if k % 2 and span % 2:  # an odd count needs an integer middle start; take one more window
        k += 1
    while True:  # rounding can widen the middle gap past stride: then use two more windows
        half = [i * span // (k - 1) for i in range(k // 2)]
        starts = half + ([span // 2] if k % 2 else []) + [span - s for s in reversed(half)]
        if max(b - a for a, b in zip(starts, starts[1:], strict=False)) <= stride:
            return [(s, s + body) for s in starts]
        k += 2


class _Engine:
    """Runs batches of windows through a backbone and pools them (see the module docstring)."""

    def __init__(self, model, tokenizer, *, window: int, overlap: int, pooling: str, rc: bool,
                 per_token: bool, batch_size: int, device) -> None:
        import torch

        self.torch = torch
        self.backbone = model.backbone.to(device).eval()
        self.tok, self.device = tokenizer, device
        self.pooling, self.rc, self.per_token, self.batch_size = pooling, rc, per_token, batch_size
        self.n_pre, self.n_suf = len(tokenizer.template["prefix"]), len(tokenizer.template["suffix"])
        self.body = window - self.n_pre - self.n_suf
        if self.body < 1:
            raise EmbedError(f"window {window} leaves no room for a sequence token besides the "
                             f"{self.n_pre + self.n_suf} special tokens")
        if not 0 <= overlap < self.body:
            raise EmbedError(f"overlap must be in [0, {self.body}) for window {window}, got {overlap}")
        self.stride = self.body - overlap
        if rc:
            if tokenizer.complement_map is None:
                raise EmbedError(f"rc averaging needs a nucleotide tokenizer; {tokenizer.name!r} has no reverse complement")
            self.cmap = np.asarray(tokenizer.complement_map, dtype=np.int64)
        self.d = model.backbone.config.d_model

    def _run(self, bodies: list[np.ndarray]):
        """Hidden states of a batch of window bodies: ``(B, L, d)`` tensor and the ``(B, L)`` mask
        of body positions (specials and padding excluded)."""
        torch = self.torch
        rows = [self.tok.apply_template(b) for b in bodies]
        enc = self.tok.pad(rows, return_tensors="pt")
        ids, mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        hidden = self.backbone(ids, attention_mask=mask).float()  # (B, L, d)
        body = mask & ~enc.special_tokens_mask.to(self.device)
        return hidden, body, mask, torch.as_tensor([len(r) for r in rows], device=self.device)

    def _pool(self, hidden, body, lengths):
        if self.pooling == "mean":
            m = body.to(hidden.dtype).unsqueeze(-1)
            return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, d)
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden[self.torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]  # last real token

    def run_batch(self, bodies: list[np.ndarray]) -> list[np.ndarray]:
        """Per window: the pooled ``(d,)`` vector, or the ``(n_body, d)`` body states."""
        with self.torch.inference_mode():
            hidden, body, _, lengths = self._run(bodies)
            if self.rc:
                rhidden, rbody, _, rlengths = self._run([self.cmap[b][::-1].copy() for b in bodies])
            if not self.per_token:
                pooled = self._pool(hidden, body, lengths)
                if self.rc:
                    pooled = 0.5 * (pooled + self._pool(rhidden, rbody, rlengths))
                return list(pooled.cpu().numpy())
            out = []
            for i, b in enumerate(bodies):
                states = hidden[i, self.n_pre : self.n_pre + len(b)]
                if self.rc:  # reverse strand position j covers forward position n-1-j
                    states = 0.5 * (states + rhidden[i, self.n_pre : self.n_pre + len(b)].flip(0))
                out.append(states.cpu().numpy())
            return out

    def embed_chunk(self, records: list[tuple[str, np.ndarray]], progress=None) -> list[Embedding]:
        """Embed a chunk of tokenized records; windows of all of them are bucketed by length."""
        wins = [_Window(r, s, e) for r, (_, ids) in enumerate(records) for s, e in sliding_windows(len(ids), self.body, self.stride)]
        order = sorted(range(len(wins)), key=lambda i: wins[i].end - wins[i].start, reverse=True)
        if self.per_token:
            acc = [np.zeros((len(ids), self.d), np.float32) for _, ids in records]
            cnt = [np.zeros(len(ids), np.float32) for _, ids in records]
        else:
            acc = np.zeros((len(records), self.d), np.float64)
            cnt = np.zeros(len(records), np.float64)
        for i in range(0, len(order), self.batch_size):
            batch = [wins[j] for j in order[i : i + self.batch_size]]
            vecs = self.run_batch([records[w.rec][1][w.start : w.end] for w in batch])
            for w, v in zip(batch, vecs, strict=True):
                if self.per_token:
                    acc[w.rec][w.start : w.end] += v
                    cnt[w.rec][w.start : w.end] += 1
                else:
                    acc[w.rec] += (w.end - w.start) * v
                    cnt[w.rec] += w.end - w.start
            if progress is not None:
                progress.update(sum(w.end - w.start for w in batch))
        out = []
        for r, (name, ids) in enumerate(records):
            vec = acc[r] / cnt[r][:, None] if self.per_token else (acc[r] / cnt[r]).astype(np.float32)
            out.append(Embedding(name, len(ids), vec))
        return out


def iter_embedding_chunks(
    model: Any,
    records: Iterable[Any],
    *,
    tokenizer: Any = None,
    window: int | None = None,
    overlap: int | None = None,
    pooling: str | None = None,
    rc: bool = False,
    per_token: bool = False,
    batch_size: int = 32,
    chunk_tokens: int = 1 << 20,
    device: str | None = None,
    progress: bool = False,
    source_name: str = "input",
    shard: tuple[int, int] | None = None,
    modality: str | None = None,
) -> Iterator[tuple[int, list[Embedding]]]:
    """Embed ``records`` chunk by chunk: yields ``(chunk_index, embeddings)`` in input order.

    Reads about ``chunk_tokens`` tokens of records at a time and embeds them together (windows of
    the whole chunk bucketed by length). With ``shard=(rank, world)`` only the chunks whose index
    is ``rank`` modulo ``world`` are embedded (every record is still read and tokenized, so
    chunk boundaries, and errors, are the same on every process). ``modality`` (``dna``, ``rna``,
    ``protein``) says what the records are for a multi-omic checkpoint (default: its tokenizer's
    default modality).
    """
    import torch
    from tqdm.auto import tqdm

    from bioseq.tokenization import TokenizerError

    model, tok, source = load_model_and_tokenizer(model, tokenizer, modality=modality)
    window = int(window or training_window(model, source))
    overlap = window // 4 if overlap is None else int(overlap)
    pooling = pooling or default_pooling(model)
    _check_pooling(pooling, model, tok)
    if batch_size < 1 or chunk_tokens < 1:
        raise EmbedError("batch_size and chunk_tokens must be >= 1")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    engine = _Engine(model, tok, window=window, overlap=overlap, pooling=pooling, rc=rc, per_token=per_token,
                     batch_size=batch_size, device=device)
    rank, world = shard or (0, 1)
    bar = tqdm(total=None, unit="tok", unit_scale=True, desc="embed", disable=not progress, file=sys.stderr,
               leave=False)
    chunk: list[tuple[str, np.ndarray]] = []
    held = index = 0
    try:
        for name, seq in _as_records(records):
            try:
                ids = tok.encode(seq, add_special_tokens=False)
            except TokenizerError as e:
                raise EmbedError(f"{source_name}: record {name!r}: {e}") from None
            if len(ids) == 0:
                raise EmbedError(f"{source_name}: record {name!r} has no tokens")
            chunk.append((name, ids))
            held += len(ids)
            if held >= chunk_tokens:
                if index % world == rank:
                    yield index, engine.embed_chunk(chunk, bar)
                chunk, held, index = [], 0, index + 1
        if chunk and index % world == rank:
            yield index, engine.embed_chunk(chunk, bar)
    finally:
        bar.close()


def iter_embeddings(model: Any, records: Iterable[Any], **kwargs: Any) -> Iterator[Embedding]:
    """Embed ``records`` lazily, one :class:`Embedding` per record in input order (keyword
    arguments as :func:`iter_embedding_chunks` and :func:`embed`)."""
    for _, embs in iter_embedding_chunks(model, records, **kwargs):
        yield from embs


def embed(
    model: Any,
    seqs: Any,
    *,
    tokenizer: Any = None,
    window: int | None = None,
    overlap: int | None = None,
    pooling: str | None = None,
    rc: bool = False,
    per_token: bool = False,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
    modality: str | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Embed sequences with a pretrained model.

    Args:
        model: a checkpoint folder (``config.json`` + ``model.safetensors`` [+ ``tokenizer.json``]),
            a shipped model name, or a loaded bioseq model.
        seqs: a string, a list of strings, ``(name, sequence)`` pairs or FASTA records.
        tokenizer: overrides the checkpoint's ``tokenizer.json`` (a name, a file or a Tokenizer).
        window: tokens per window, specials included (default: the model's training window).
        overlap: tokens shared by consecutive windows (default ``window // 4``).
        pooling: ``mean`` (default), ``cls`` or ``last`` (module docstring).
        rc: average with the reverse complement (nucleotide tokenizers only).
        per_token: return ``(L_i, d)`` states per sequence instead of one ``(d,)`` vector.
        batch_size: windows per forward pass.
        device: ``cpu``, ``cuda`` ... (default: CUDA when available).
        progress: show a progress bar on stderr.
        modality: ``dna``, ``rna`` or ``protein`` for a multi-omic checkpoint (default: its
            tokenizer's default modality); an error for single-alphabet tokenizers.
    Returns:
        ``(N, d)`` float32 array in input order, or a list of ``(L_i, d)`` arrays with ``per_token``.
    Raises:
        EmbedError: a sequence the tokenizer rejects (naming it), or unusable options.
    """
    out = [e.vector for e in iter_embeddings(model, seqs, tokenizer=tokenizer, window=window, overlap=overlap,
                                             pooling=pooling, rc=rc, per_token=per_token, batch_size=batch_size,
                                             device=device, progress=progress, modality=modality)]
    if per_token:
        return out
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


# ----------------------------------------------------------------------------------------------
# streaming writers: each writes under a temporary name (bioseq.io.atomic) and renames at the end
# ----------------------------------------------------------------------------------------------
def output_format(path: str | os.PathLike) -> str:
    """``npy``, ``parquet`` or ``zarr`` from the output name's extension."""
    name = str(path).rstrip("/")
    for fmt, exts in (("npy", (".npy",)), ("parquet", (".parquet", ".pq")), ("zarr", (".zarr",))):
        if name.endswith(exts):
            return fmt
    raise EmbedError(f"{path}: output must end in .npy, .parquet or .zarr")


class _NpyWriter:
    """A ``.npy`` file of ``(N, d)`` float32 written row by row: the header is reserved first and
    rewritten with the final row count at the end (N is unknown while streaming)."""

    HEADER = 128  # bytes, a multiple of 64 as the format asks

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")
        self.f.write(b"\0" * self.HEADER)
        self.n, self.d = 0, None

    def write(self, e: Embedding) -> None:
        v = np.ascontiguousarray(e.vector, dtype="<f4")
        if v.ndim != 1:
            raise EmbedError(".npy output holds one vector per sequence; use .zarr for per-token output")
        self.d = len(v) if self.d is None else self.d
        self.f.write(v.tobytes())
        self.n += 1

    def close(self) -> None:
        shape = f"({self.n}, {self.d or 0})"
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"
        header = header.ljust(self.HEADER - 10 - 1) + "\n"
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1"))
        self.f.close()

    def abort(self) -> None:
        self.f.close()


class _ParquetWriter:
    """Parquet rows ``name (string), n_tokens (int64), embedding (list<float32>)``, one row group
    per chunk of records."""

    def __init__(self, path: Path, rows_per_group: int = 4096) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise EmbedError("parquet output needs pyarrow (pip install pyarrow)") from e
        self.pa, self.pq, self.path = pa, pq, path
        self.schema = pa.schema([("name", pa.string()), ("n_tokens", pa.int64()), ("embedding", pa.list_(pa.float32()))])
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.rows: list[Embedding] = []
        self.rows_per_group = rows_per_group

    def write(self, e: Embedding) -> None:
        if e.vector.ndim != 1:
            raise EmbedError(".parquet output holds one vector per sequence; use .zarr for per-token output")
        self.rows.append(e)
        if len(self.rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            pa = self.pa
            table = pa.table({"name": [r.name for r in self.rows], "n_tokens": [r.n_tokens for r in self.rows],
                              "embedding": [r.vector.astype(np.float32) for r in self.rows]}, schema=self.schema)
            self.writer.write_table(table)
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def abort(self) -> None:
        self.writer.close()


class _ZarrWriter:
    """A Zarr v3 group: ``embeddings (N, d)`` (or ``tokens (sum L, d)`` + ``offsets (N+1,)`` for
    per-token output: record ``i`` is ``tokens[offsets[i]:offsets[i+1]]``), ``n_tokens (N,)`` and
    ``names (N,)`` strings."""

    def __init__(self, path: Path, per_token: bool, attrs: dict[str, Any], rows_per_chunk: int = 4096) -> None:
        import zarr

        self.zarr, self.per_token, self.rows_per_chunk = zarr, per_token, rows_per_chunk
        self.root = zarr.open_group(str(path), mode="w")
        self.root.attrs.update({"format": "bioseq-embeddings", "format_version": 1, **attrs})
        self.buf: list[Embedding] = []
        self.arrays: dict[str, Any] = {}
        self.n = self.t = 0

    def _append(self, key: str, data: np.ndarray, chunk_rows: int) -> None:
        arr = self.arrays.get(key)
        if arr is None:
            # names: zarr's variable-length UTF-8 strings (a specified v3 data type)
            arr = self.root.create_array(key, shape=(0, *data.shape[1:]), dtype=str if data.dtype == object else data.dtype,
                                         chunks=(chunk_rows, *data.shape[1:]))
            self.arrays[key] = arr
        n0 = arr.shape[0]
        arr.resize((n0 + len(data), *data.shape[1:]))
        arr[n0:] = data

    def write(self, e: Embedding) -> None:
        self.buf.append(e)
        if sum(len(b.vector) if self.per_token else 1 for b in self.buf) >= self.rows_per_chunk * (64 if self.per_token else 1):
            self._flush()

    def _flush(self) -> None:
        if not self.buf:
            return
        if self.per_token:
            vecs = np.concatenate([b.vector for b in self.buf]).astype(np.float32)
            self._append("tokens", vecs, 1 << 16)
            ends = self.t + np.cumsum([len(b.vector) for b in self.buf])
            self._append("offsets", np.concatenate([[0], ends]) if self.n == 0 else ends, self.rows_per_chunk)
            self.t = int(ends[-1])
        else:
            self._append("embeddings", np.stack([b.vector for b in self.buf]).astype(np.float32), self.rows_per_chunk)
        self._append("n_tokens", np.array([b.n_tokens for b in self.buf], np.int64), self.rows_per_chunk)
        self._append("names", np.array([b.name for b in self.buf], dtype=object), self.rows_per_chunk)
        self.n += len(self.buf)
        self.buf = []

    def close(self) -> None:
        self._flush()
        if self.per_token and self.n == 0:
            self._append("offsets", np.zeros(1, np.int64), 1)


def write_embeddings(embeddings: Iterable[Embedding], out: str | os.PathLike, *, per_token: bool = False,
                     attrs: dict[str, Any] | None = None) -> int:
    """Stream ``embeddings`` into ``out`` (``.npy``, ``.parquet`` or ``.zarr``) under a temporary
    name, renamed onto ``out`` only when every record is written. Returns the number of records.
    Per-token output needs ``.zarr``."""
    from bioseq.io.atomic import atomic_dir, atomic_file

    out = Path(out)
    fmt = output_format(out)
    if per_token and fmt != "zarr":
        raise EmbedError(f"{out}: per-token output needs a .zarr output (ragged arrays)")
    if fmt == "zarr":
        with atomic_dir(out) as tmp:
            w = _ZarrWriter(tmp, per_token, attrs or {})
            for e in embeddings:
                w.write(e)
            w.close()
            return w.n
    with atomic_file(out) as tmp:
        w = _NpyWriter(tmp) if fmt == "npy" else _ParquetWriter(tmp)
        n = 0
        try:
            for e in embeddings:
                w.write(e)
                n += 1
        except BaseException:
            w.abort()
            raise
        w.close()
        return n


def embed_file(model: Any, fasta: str | os.PathLike, out: str | os.PathLike, *, per_token: bool = False,
               attrs: dict[str, Any] | None = None, **kwargs: Any) -> int | None:
    """Embed every record of ``fasta`` into ``out`` (what ``bioseq embed`` runs); returns the
    number of records, or None on the non-main processes of a distributed run.

    Under ``accelerate launch --num_processes N`` each process embeds every N-th chunk of records
    (on its own GPU when there are GPUs) into a part file beside ``out``; the main process then
    streams the parts, in input order, into the one output. The result is the same file a single
    process writes.
    """
    records = read_fasta_text(fasta)
    kwargs.setdefault("source_name", str(fasta))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return write_embeddings(iter_embeddings(model, records, per_token=per_token, **kwargs), out,
                                per_token=per_token, attrs=attrs)
    import shutil

    from accelerate import PartialState

    state = PartialState()
    out = Path(out)
    output_format(out)
    # The same folder name on every process (and node) of this launch.
    run_id = os.environ.get("TORCHELASTIC_RUN_ID") or f"{os.environ.get('MASTER_ADDR', '')}-{os.environ.get('MASTER_PORT', '')}"
    parts = out.parent / f".{out.name}.parts-{run_id}"
    parts.mkdir(parents=True, exist_ok=True)
    if kwargs.get("device") is None and state.device.type != "cpu":
        kwargs["device"] = str(state.device)
    try:
        for index, embs in iter_embedding_chunks(model, records, per_token=per_token,
                                                 shard=(state.process_index, state.num_processes), **kwargs):
            tmp = parts / f".{index:09d}.npz"
            with open(tmp, "wb") as fh:  # np.savez on a handle: it would append .npz to a name
                np.savez(fh, names=np.array([e.name for e in embs]), n_tokens=np.array([e.n_tokens for e in embs]),
                         lengths=np.array([len(e.vector) if per_token else 1 for e in embs]),
                         vectors=np.concatenate([np.atleast_2d(e.vector) for e in embs]).astype(np.float32))
            os.replace(tmp, parts / f"{index:09d}.npz")
        state.wait_for_everyone()
        if not state.is_main_process:
            state.wait_for_everyone()
            return None

        def merged() -> Iterator[Embedding]:
            for f in sorted(parts.glob("[0-9]*.npz")):
                z = np.load(f)
                ends = np.cumsum(z["lengths"])
                for name, n, a, b in zip(z["names"], z["n_tokens"], ends - z["lengths"], ends, strict=True):
                    v = z["vectors"][a:b]
                    yield Embedding(str(name), int(n), v if per_token else v[0])

        n = write_embeddings(merged(), out, per_token=per_token, attrs=attrs)
        state.wait_for_everyone()
        return n
    finally:
        if state.is_main_process:
            shutil.rmtree(parts, ignore_errors=True)


def read_embeddings(path: str | os.PathLike) -> tuple[list[str] | None, np.ndarray | list[np.ndarray]]:
    """Read what :func:`write_embeddings` wrote: ``(names or None for .npy, vectors)``."""
    fmt = output_format(path)
    if fmt == "npy":
        return None, np.load(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(str(path))
        return t.column("name").to_pylist(), np.array(t.column("embedding").to_pylist(), dtype=np.float32)
    import zarr

    g = zarr.open_group(str(path), mode="r")
    names = [str(x) for x in g["names"][:]] if "names" in g else []
    if "tokens" in g:
        tokens, offsets = g["tokens"][:], g["offsets"][:]
        return names, [tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return names, g["embeddings"][:] if "embeddings" in g else np.zeros((0, 0), np.float32)


__all__ = ["EmbedError", "Embedding", "embed", "embed_file", "iter_embedding_chunks", "iter_embeddings", "load_model_and_tokenizer", "read_embeddings",
           "read_fasta_text", "write_embeddings"]
