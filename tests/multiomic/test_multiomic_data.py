import json
import math

import pytest

from bioseq.multiomic.data import (
    IGNORE_INDEX,
    DataError,
    derive_ddg_pairs,
    dg_consistent,
    dg_from_kd,
    load_contacts,
    load_pronab,
    load_residue_labels,
)

P1 = "MKVLAAGRRK"
P2 = "MSTNPKPQRK"


def _write(tmp_path, obj, name="pronab.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_dg_from_kd_known_value():
    # RT ln(1 nM) at 298.15 K = 0.0019872 * 298.15 * ln(1e-9) = -12.28 kcal/mol
    assert dg_from_kd(1e-9) == pytest.approx(-12.278, abs=1e-3)
    assert dg_consistent(-12.28, 1e-9)
    assert dg_consistent(-11.5, 1e-9)  # implies ~279 K: a cold measurement, fine
    assert not dg_consistent(-24.0, 1e-9)  # implies ~583 K: not RT ln Kd


def test_pronab_cleaning(tmp_path):
    kd = 1e-8
    dg = round(dg_from_kd(kd), 2)
    raw = {
        "Q1": {"Sequence": P1, "binding data": [
            ["ACGTACGT", "DNA", kd, dg, "ACGTACGT"],
            ["ACGTACGT", "DNA", kd, dg, "ACGTACGT"],       # duplicate
            ["ACGTACGA", "DNA", 0.0, 0.0, ""],             # both missing -> dropped
            ["ACGTACGG", "DNA", 1e-6, 0.0, ""],            # dG missing -> RT ln Kd
            ["ACGTACCC", "RNA", 2e-8, 1.5e-8, ""],         # Kd typed into the dG column
            ["ACGTAAAA", "DNA", 1e-6, -20.0, ""],          # dG != RT ln Kd -> dropped
            ["", "DNA", 1e-7, -9.5, ""],                   # no nucleic acid -> dropped
        ]},
        "Q2": {"Sequence": P2, "binding data": [["ACGTACGT", "DNA", kd, dg, ""]]},
    }
    recs, rep = load_pronab(_write(tmp_path, raw))
    assert (rep.n_raw, rep.n_duplicates, rep.n_missing_dropped, rep.n_dg_from_kd,
            rep.n_kd_in_dg_repaired, rep.n_inconsistent_dropped, rep.n_kept) == (8, 1, 2, 1, 1, 1, 4)
    by_na = {(r.accession, r.na): r for r in recs}
    assert by_na[("Q1", "ACGTACGG")].dg == pytest.approx(dg_from_kd(1e-6))
    assert by_na[("Q1", "ACGTACCC")].dg == pytest.approx(dg_from_kd(1.5e-8))
    assert by_na[("Q1", "ACGTACCC")].na_type == "RNA"
    assert by_na[("Q1", "ACGTACGT")].na2 == "ACGTACGT"
    assert ("Q2", "ACGTACGT") in by_na  # same NA and dG, different protein: not a duplicate
    assert all(r.dg < 0 for r in recs)
    kept, rep2 = load_pronab(_write(tmp_path, raw, "b.json"), drop_inconsistent=False)
    assert rep2.n_kept == 5 and any(r.dg == -20.0 for r in kept)


@pytest.mark.parametrize("obj, needle", [
    ({"Q1": {"Sequence": P1}}, "'Q1': needs 'Sequence' and 'binding data'"),
    ({"Q1": {"Sequence": P1, "binding data": [["ACGT", "DNA", "x", -9.0, ""]]}}, "'Q1' row 0: Kd must be a number"),
    ({"Q1": {"Sequence": P1, "binding data": [["ACGJ", "DNA", 1e-8, -9.0, ""]]}}, "non-nucleotide"),
    ({"Q1": {"Sequence": "MK1", "binding data": []}}, "non-amino-acid"),
    ({"Q1": {"Sequence": P1, "binding data": [["ACGT", "DNA"]]}}, "row 0: expected"),
    ([1, 2], "expected an object"),
])
def test_pronab_errors_name_file_and_record(tmp_path, obj, needle):
    p = _write(tmp_path, obj)
    with pytest.raises(DataError, match="pronab.json") as e:
        load_pronab(p)
    assert needle in str(e.value)


def test_pronab_unreadable(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_pronab(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        load_pronab(tmp_path / "bad.json")


def test_ddg_pairs_known_answers(tmp_path):
    rows = [
        ["AAAA", "DNA", 1e-8, -10.0, ""], ["AAAA", "DNA", 1e-8, -11.0, ""],  # replicates: mean -10.5
        ["AAAT", "DNA", 1e-7, -9.0, ""], ["AATT", "DNA", 1e-7, -8.5, ""], ["TTTT", "DNA", 1e-6, -7.0, ""],
        ["AAAAA", "DNA", 1e-8, -10.2, ""],  # other length: never paired
        ["AAAC", "RNA", 1e-8, -9.9, ""],    # RNA: not paired with the DNA strands
    ]
    raw = {"Q1": {"Sequence": P1, "binding data": rows},
           "Q2": {"Sequence": P2, "binding data": [["AAAC", "DNA", 1e-8, -9.6, ""]]}}
    recs, _ = load_pronab(_write(tmp_path, raw), drop_inconsistent=False)
    pairs = derive_ddg_pairs(recs)
    got = {(p.na_wt, p.na_mut): (p.n_subs, round(p.ddg, 6)) for p in pairs}
    assert got == {
        ("AAAA", "AAAT"): (1, 1.5),
        ("AAAA", "AATT"): (2, 2.0),
        ("AAAT", "AATT"): (1, 0.5),
        ("AATT", "TTTT"): (2, 1.5),
    }
    assert all(p.protein == P1 for p in pairs)
    assert len(derive_ddg_pairs(recs, max_subs=1)) == 2
    assert len(derive_ddg_pairs(recs, max_pairs_per_protein=3)) == 3


def test_residue_labels_loader(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text(">P1\nMKVL\n01X2\n>P2\nAC\n10\n")
    recs = load_residue_labels(p)
    assert [r.name for r in recs] == ["P1", "P2"]
    assert recs[0].labels == (0, 1, IGNORE_INDEX, 0)
    p.write_text(">P1\nMKVL\n010\n")
    with pytest.raises(DataError, match="labels.txt: record P1: 3 labels for 4 residues"):
        load_residue_labels(p)


def test_contacts_loader_errors(tmp_path):
    head = "pdb_id\tprotein_chain\tprotein_seq\tcontact_labels_4p5A\tn_contacts\tdna_chains\n"
    p = tmp_path / "c.tsv"
    p.write_text(head + "1ABC\tA\tMKVL\t0110\t2\tB:ACGT;C:TTGA\n")
    (r,) = load_contacts(p)
    assert r.name == "1ABC_A" and r.labels == (0, 1, 1, 0) and r.dna == ("ACGT", "TTGA")
    p.write_text(head + "1ABC\tA\tMKVL\t011\t2\tB:ACGT\n")
    with pytest.raises(DataError, match=r"c.tsv:2 \(1ABC_A\): contact labels"):
        load_contacts(p)
    p.write_text(head + "1ABC\tA\tMKVL\t0110\t3\tB:ACGT\n")
    with pytest.raises(DataError, match="n_contacts 3 != 2"):
        load_contacts(p)


def test_real_contacts_and_labels(shared):
    recs = load_contacts(shared / "protein_dna/haddock_pdna_contacts/pdna_benchmark_contacts.tsv")
    assert len(recs) == 72
    assert all(len(r.labels) == len(r.protein) and r.dna for r in recs)
    assert 0 < sum(sum(r.labels) for r in recs) < sum(len(r.labels) for r in recs)
    test1 = load_residue_labels(shared / "protein_dna/dnareader_residue_labels/TestingDataset1.txt")
    assert len(test1) == 430


def test_real_pronab(shared):
    recs, rep = load_pronab(shared / "protein_dna/pronab/pronab_no_mutations.json")
    assert rep.n_raw == 14582
    assert rep.n_kd_in_dg_repaired == 6  # the six Kd values typed into L7N222's dG column
    assert rep.n_missing_dropped >= 910
    assert all(r.dg < 0 for r in recs)
    assert len({(r.protein, r.na, r.na2, r.na_type, round(r.dg, 2)) for r in recs}) == len(recs)
    for r in recs[::50]:
        if not math.isnan(r.kd):
            assert dg_consistent(r.dg, r.kd)
