"""Loaders for protein-nucleic-acid data, with validation and clear errors.

* :func:`load_pronab` -- ProNAB binding affinities (``pronab_no_mutations.json``): rows with
  missing values repaired where possible or dropped, Kd values sitting in the dG column repaired,
  dG checked against ``RT ln Kd``, duplicates by (protein, nucleic acid, dG) removed.
* :func:`derive_ddg_pairs` -- ddG pairs from ProNAB itself: same protein, nucleic acids of equal
  length differing by 1-2 substitutions.
* :func:`load_contacts` -- per-residue DNA contacts of protein chains (HADDOCK protein-DNA
  benchmark TSV); :func:`load_residue_labels` -- three-line FASTA-like per-residue labels.

Structural problems (unreadable file, wrong field types, labels not matching the sequence) raise
:class:`DataError` naming the file, the record and the problem. Data-quality problems that the
sources are known to have (missing measurements, Kd in the dG column, duplicates) are repaired or
dropped and counted in a :class:`LoadReport`.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: gas constant in kcal/(mol K)
R_KCAL = 1.987204e-3
#: 25 C, the temperature ProNAB's dG = RT ln Kd is checked at
T_REF = 298.15
IGNORE_INDEX = -100

_NA_RE = re.compile(r"^[ACGTUNRYSWKMBDHV]*$")
_AA_RE = re.compile(r"^[ACDEFGHIKLMNPQRSTVWYXBZUO]+$")


class DataError(ValueError):
    """Malformed input: the message names the file, the record and the problem."""


@dataclass(frozen=True)
class BindingRecord:
    """One protein-nucleic-acid affinity measurement.

    Attributes:
        accession: UniProt accession of the protein.
        protein: amino-acid sequence.
        na: first nucleic-acid strand (5'->3').
        na2: second strand of a duplex, or "".
        na_type: ``DNA``, ``RNA`` or ``Other``.
        kd: dissociation constant in M (nan when unknown).
        dg: binding free energy in kcal/mol (negative = binds).
    """

    accession: str
    protein: str
    na: str
    na2: str
    na_type: str
    kd: float
    dg: float


@dataclass
class LoadReport:
    """What :func:`load_pronab` did to the raw rows (counts add up to ``n_raw``)."""

    n_raw: int = 0
    n_missing_dropped: int = 0
    n_dg_from_kd: int = 0  # dG missing, recomputed as RT ln Kd
    n_kd_in_dg_repaired: int = 0
    n_inconsistent_dropped: int = 0
    n_duplicates: int = 0
    n_kept: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.n_raw} rows: {self.n_missing_dropped} dropped for missing values, "
                f"{self.n_dg_from_kd} dG filled from Kd, {self.n_kd_in_dg_repaired} Kd-in-dG repaired, "
                f"{self.n_inconsistent_dropped} dropped as dG != RT ln Kd, {self.n_duplicates} duplicates, "
                f"{self.n_kept} kept")


def dg_from_kd(kd: float, temperature: float = T_REF) -> float:
    """dG = RT ln Kd in kcal/mol (Kd in M)."""
    return R_KCAL * temperature * math.log(kd)


def dg_consistent(dg: float, kd: float, atol: float = 0.1, t_range: tuple[float, float] = (260.0, 345.0)) -> bool:
    """Is ``dg`` a plausible ``RT ln Kd``? True when it matches at 298 K within ``atol`` kcal/mol,
    or when the temperature it implies lies in ``t_range`` (measurements span ~4-60 C)."""
    ref = dg_from_kd(kd)
    if abs(dg - ref) <= atol:
        return True
    lnk = math.log(kd)
    if lnk == 0.0:
        return False
    t_implied = dg / (R_KCAL * lnk)
    return t_range[0] <= t_implied <= t_range[1]


def _is_missing(x) -> bool:
    return x is None or x == "" or (isinstance(x, float) and (math.isnan(x) or x == 0.0)) or x == 0


def load_pronab(
    path: str | Path,
    *,
    drop_inconsistent: bool = True,
    kd_in_dg_max: float = 1e-2,
) -> tuple[list[BindingRecord], LoadReport]:
    """Read ProNAB's JSON (accession -> {"Sequence", "binding data": [[na, type, Kd, dG, na2], ...]}).

    Cleaning, in order, per row:

    1. no nucleic acid, or neither Kd nor dG -> dropped (missing);
    2. dG missing but Kd present -> dG = RT ln Kd at 298.15 K;
    3. a positive dG below ``kd_in_dg_max`` is a dissociation constant typed into the dG column:
       dG = RT ln(that value);
    4. dG checked against RT ln Kd (:func:`dg_consistent`); inconsistent rows dropped when
       ``drop_inconsistent``;
    5. duplicates by (protein, nucleic acid strands, type, dG rounded to 0.01) dropped.

    Returns ``(records, report)``. Raises :class:`DataError` on structural problems.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected an object keyed by accession, got {type(raw).__name__}")
    report = LoadReport()
    out: list[BindingRecord] = []
    seen: set[tuple] = set()
    for acc, entry in raw.items():
        where = f"{path}: entry {acc!r}"
        if not isinstance(entry, dict) or "Sequence" not in entry or "binding data" not in entry:
            raise DataError(f"{where}: needs 'Sequence' and 'binding data' fields")
        protein = str(entry["Sequence"]).strip().upper()
        if not _AA_RE.match(protein):
            bad = sorted(set(protein) - set("ACDEFGHIKLMNPQRSTVWYXBZUO"))
            raise DataError(f"{where}: protein sequence empty or with non-amino-acid characters {bad}")
        rows = entry["binding data"]
        if not isinstance(rows, list):
            raise DataError(f"{where}: 'binding data' must be a list")
        for i, row in enumerate(rows):
            rw = f"{where} row {i}"
            if not isinstance(row, (list, tuple)) or len(row) not in (4, 5):
                raise DataError(f"{rw}: expected [na, type, Kd, dG, na2], got {row!r}")
            na, na_type, kd, dg = row[0], row[1], row[2], row[3]
            na2 = row[4] if len(row) == 5 else ""
            report.n_raw += 1
            for name, v in (("Kd", kd), ("dG", dg)):
                if v is not None and not isinstance(v, (int, float)):
                    raise DataError(f"{rw}: {name} must be a number, got {v!r}")
            na = (na or "").strip().upper()
            na2 = (na2 or "").strip().upper()
            if not _NA_RE.match(na) or not _NA_RE.match(na2):
                raise DataError(f"{rw}: nucleic acid with non-nucleotide characters: {na!r} {na2!r}")
            kd = float("nan") if _is_missing(kd) else float(kd)
            dg = float("nan") if _is_missing(dg) else float(dg)
            if not na or (math.isnan(kd) and math.isnan(dg)):
                report.n_missing_dropped += 1
                continue
            if not math.isnan(kd) and kd <= 0:
                raise DataError(f"{rw}: Kd must be positive, got {kd}")
            if math.isnan(dg):
                dg = dg_from_kd(kd)
                report.n_dg_from_kd += 1
            elif 0 < dg < kd_in_dg_max:
                report.notes.append(f"{rw}: dG column holds {dg:g} (a Kd in M); dG set to RT ln of it")
                dg = dg_from_kd(dg)
                report.n_kd_in_dg_repaired += 1
            if not math.isnan(kd) and not dg_consistent(dg, kd):
                if drop_inconsistent:
                    report.n_inconsistent_dropped += 1
                    report.notes.append(f"{rw}: dG {dg:.2f} inconsistent with RT ln Kd = {dg_from_kd(kd):.2f}; dropped")
                    continue
            key = (protein, na, na2, str(na_type), round(dg, 2))
            if key in seen:
                report.n_duplicates += 1
                continue
            seen.add(key)
            out.append(BindingRecord(str(acc), protein, na, na2, str(na_type), kd, dg))
    report.n_kept = len(out)
    return out, report


# -- ddG pairs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DDGPair:
    """Two measurements on the same protein whose nucleic acids differ by a few substitutions.

    ``ddg = dg_mut - dg_wt``; the reference ("wild type") is the lexicographically smaller
    sequence, so the sign of ddG carries no ordering bias.
    """

    protein: str
    na_type: str
    na_wt: str
    na_mut: str
    dg_wt: float
    dg_mut: float
    n_subs: int

    @property
    def ddg(self) -> float:
        return self.dg_mut - self.dg_wt


def hamming(a: str, b: str) -> int:
    if len(a) != len(b):
        raise ValueError("hamming distance needs equal lengths")
    return sum(x != y for x, y in zip(a, b, strict=True))


def derive_ddg_pairs(
    records: list[BindingRecord], max_subs: int = 2, min_subs: int = 1, max_pairs_per_protein: int | None = None
) -> list[DDGPair]:
    """All pairs (same protein sequence, same nucleic-acid type, first strands of equal length
    differing by ``min_subs..max_subs`` substitutions). Replicate measurements of one
    (protein, strand) are averaged first. ``max_pairs_per_protein`` keeps the first pairs in a
    deterministic order so one heavily mutated protein cannot dominate."""
    dgs: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in records:
        dgs[(r.protein, r.na_type, r.na)].append(r.dg)
    by_group: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for (p, t, na) in dgs:
        by_group[(p, t, len(na))].append(na)
    pairs: list[DDGPair] = []
    per_protein: dict[str, int] = defaultdict(int)
    for (p, t, _), nas in sorted(by_group.items()):
        nas = sorted(nas)
        for i, a in enumerate(nas):
            for b in nas[i + 1:]:
                d = hamming(a, b)
                if min_subs <= d <= max_subs:
                    if max_pairs_per_protein is not None and per_protein[p] >= max_pairs_per_protein:
                        continue
                    per_protein[p] += 1
                    da, db = (sum(dgs[(p, t, x)]) / len(dgs[(p, t, x)]) for x in (a, b))
                    pairs.append(DDGPair(p, t, a, b, da, db, d))
    return pairs


# -- per-residue binding labels ----------------------------------------------------------------


@dataclass(frozen=True)
class ResidueLabels:
    """A protein with per-residue labels: 1 binds DNA, 0 does not, -100 unannotated."""

    name: str
    protein: str
    labels: tuple[int, ...]
    dna: tuple[str, ...] = ()  # partner strands where known


def load_contacts(path: str | Path) -> list[ResidueLabels]:
    """HADDOCK protein-DNA benchmark contacts: TSV with ``pdb_id, protein_chain, protein_seq,
    contact_labels_4p5A (0/1 string), n_contacts, dna_chains (CHAIN:SEQ;...)``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    lines = path.read_text().splitlines()
    need = ["pdb_id", "protein_chain", "protein_seq", "contact_labels_4p5A", "n_contacts", "dna_chains"]
    header = lines[0].split("\t") if lines else []
    if header[: len(need)] != need:
        raise DataError(f"{path}: header must start with {need}, got {header}")
    out = []
    for ln, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) < len(need):
            raise DataError(f"{path}:{ln}: expected {len(need)} tab-separated fields, got {len(f)}")
        name = f"{f[0]}_{f[1]}"
        seq, lab = f[2].strip().upper(), f[3].strip()
        if not _AA_RE.match(seq):
            raise DataError(f"{path}:{ln} ({name}): protein sequence has non-amino-acid characters")
        if len(lab) != len(seq) or set(lab) - {"0", "1"}:
            raise DataError(f"{path}:{ln} ({name}): contact labels must be 0/1, one per residue "
                            f"({len(lab)} labels for {len(seq)} residues)")
        if f[4].strip() and int(f[4]) != lab.count("1"):
            raise DataError(f"{path}:{ln} ({name}): n_contacts {f[4]} != {lab.count('1')} labelled contacts")
        dna = []
        for part in filter(None, re.split(r"[;,]", f[5].strip())):
            s = part.split(":", 1)[-1].strip().upper()
            if not _NA_RE.match(s):
                raise DataError(f"{path}:{ln} ({name}): DNA chain {part!r} has non-nucleotide characters")
            dna.append(s)
        out.append(ResidueLabels(name, seq, tuple(int(c) for c in lab), tuple(dna)))
    if not out:
        raise DataError(f"{path}: no records")
    return out


def load_residue_labels(path: str | Path, positive: str = "1") -> list[ResidueLabels]:
    """Three-line records (``>id``, sequence, labels). ``positive`` labels become 1, other digits
    0 (negatives: non-binding or binding another ligand), ``X`` -100 (unannotated)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) % 3:
        raise DataError(f"{path}: {len(lines)} non-empty lines is not a multiple of 3 (header, sequence, labels)")
    out = []
    for i in range(0, len(lines), 3):
        h, seq, lab = lines[i], lines[i + 1].upper(), lines[i + 2]
        if not h.startswith(">"):
            raise DataError(f"{path}:{i + 1}: expected a '>' header, got {h[:30]!r}")
        name = h[1:].split()[0] if len(h) > 1 else f"record{i // 3}"
        if not _AA_RE.match(seq):
            raise DataError(f"{path}: record {name}: protein sequence has non-amino-acid characters")
        if len(lab) != len(seq):
            raise DataError(f"{path}: record {name}: {len(lab)} labels for {len(seq)} residues")
        bad = set(lab) - set("0123456789X")
        if bad:
            raise DataError(f"{path}: record {name}: unknown label characters {sorted(bad)}")
        y = tuple(IGNORE_INDEX if c == "X" else int(c == positive) for c in lab)
        out.append(ResidueLabels(name, seq, y))
    return out
