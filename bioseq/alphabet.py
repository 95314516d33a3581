"""The nucleotide byte code shared by the Zarr genome store, the samplers and the tokenizers.

Every base is one ``uint8``:

====  ====  =========================  ==========
code  base  meaning                    complement
====  ====  =========================  ==========
0     A     adenine                    T (3)
1     C     cytosine                   G (2)
2     G     guanine                    C (1)
3     T     thymine (U is read as T)   A (0)
4     N     any base                   N (4)
5     R     A or G                     Y (6)
6     Y     C or T                     R (5)
7     S     C or G                     S (7)
8     W     A or T                     W (8)
9     K     G or T                     M (10)
10    M     A or C                     K (9)
11    B     not A                      V (14)
12    D     not C                      H (13)
13    H     not G                      D (12)
14    V     not T                      B (11)
15    -     gap                        - (15)
====  ====  =========================  ==========

Bit 7 (``SOFTMASK = 0x80``) marks a soft-masked (lowercase) base, so ``code & CODE_MASK`` is the
base and ``code & SOFTMASK`` the mask. The four unambiguous bases take codes 0-3 so that
``code < 4`` tests "is ACGT" and ``3 - code`` complements them.

All conversions are numpy lookup tables over whole arrays: no per-character Python loops.
"""

from __future__ import annotations

import numpy as np

BASES = "ACGTNRYSWKMBDHV-"
SOFTMASK = 0x80
CODE_MASK = 0x7F
N_CODE = 4
INVALID = 0xFF

#: complement of each code (index = code)
_COMPLEMENT_CODES = np.array([3, 2, 1, 0, 4, 6, 5, 7, 8, 10, 9, 14, 13, 12, 11, 15], dtype=np.uint8)


def _build_encode_lut() -> np.ndarray:
    lut = np.full(256, INVALID, dtype=np.uint8)
    for code, base in enumerate(BASES):
        lut[ord(base)] = code
        if base.isalpha():
            lut[ord(base.lower())] = code | SOFTMASK
    lut[ord("U")] = 3
    lut[ord("u")] = 3 | SOFTMASK
    lut[ord(".")] = 15  # '.' is a gap in some alignment/FASTA dialects
    return lut


#: ASCII byte -> code (INVALID for bytes outside IUPAC)
ENCODE_LUT = _build_encode_lut()

#: code (with or without the softmask bit) -> uppercase ASCII byte
DECODE_LUT = np.full(256, ord("?"), dtype=np.uint8)
DECODE_LUT[: len(BASES)] = np.frombuffer(BASES.encode(), dtype=np.uint8)
#: soft-masked codes decode to lowercase
DECODE_LUT[SOFTMASK : SOFTMASK + len(BASES)] = np.frombuffer(BASES.lower().encode(), dtype=np.uint8)

#: code -> complement code, soft-mask bit preserved
COMPLEMENT_LUT = np.arange(256, dtype=np.uint8)
COMPLEMENT_LUT[: len(BASES)] = _COMPLEMENT_CODES
COMPLEMENT_LUT[SOFTMASK : SOFTMASK + len(BASES)] = _COMPLEMENT_CODES | SOFTMASK


class InvalidBaseError(ValueError):
    """A byte outside the IUPAC nucleotide alphabet."""


def encode(seq: str | bytes | np.ndarray, *, strict: bool = True) -> np.ndarray:
    """Encode a nucleotide string (or ASCII byte array) to ``uint8`` codes.

    Args:
        seq: the sequence; upper and lower case IUPAC codes, ``U``, ``-`` and ``.`` are accepted.
        strict: raise :class:`InvalidBaseError` naming the first bad character and its 0-based
            position; if False, bad characters become ``N``.

    Returns:
        ``(len(seq),)`` uint8 array of codes (lowercase input carries the ``SOFTMASK`` bit).
    """
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    raw = np.frombuffer(seq, dtype=np.uint8) if isinstance(seq, (bytes, bytearray)) else seq
    codes = ENCODE_LUT[raw]
    bad = codes == INVALID
    if bad.any():
        if strict:
            pos = int(np.argmax(bad))
            raise InvalidBaseError(
                f"invalid nucleotide {chr(raw[pos])!r} at position {pos} (not an IUPAC code)"
            )
        codes = codes.copy()
        codes[bad] = N_CODE
    return codes


def decode(codes: np.ndarray, *, keep_case: bool = True) -> str:
    """Decode codes back to a string (lowercase for soft-masked bases if ``keep_case``)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if not keep_case:
        codes = codes & CODE_MASK
    return DECODE_LUT[codes].tobytes().decode("ascii")


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of a code array (last axis), soft-mask bits kept."""
    return COMPLEMENT_LUT[np.asarray(codes, dtype=np.uint8)][..., ::-1]


def reverse_complement(seq: str) -> str:
    """Reverse complement of an IUPAC string, preserving case."""
    return decode(reverse_complement_codes(encode(seq)))


def is_acgt(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of unambiguous bases (soft-masked or not)."""
    return (np.asarray(codes) & CODE_MASK) < 4
