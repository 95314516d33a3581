"""Multi-omic protein-nucleic-acid modelling: loaders, protein-disjoint splits, interaction heads.

One encoder reads nucleotide and peptide tokens tagged with their modality (``<dna>``, ``<rna>``,
``<protein>``). On top of any bidirectional backbone (:mod:`bioseq.models`) this package provides

* :mod:`~bioseq.multiomic.data` -- ProNAB binding affinities (deduplicated, Kd-in-dG repaired,
  checked against dG = RT ln Kd), ddG pairs derived from ProNAB, per-residue binding labels;
* :mod:`~bioseq.multiomic.split` -- sequence-identity clustering and grouped K-fold so that no
  protein, or a near-identical one, sits in both train and test;
* :mod:`~bioseq.multiomic.tokens` -- pair encoding with the joint tagged tokenizer;
* :mod:`~bioseq.multiomic.heads` -- dG pair regression (joint or cross-attention), siamese ddG
  with the consistency loss, per-residue binding-site classification;
* :mod:`~bioseq.multiomic.attribution` -- integrated gradients over token embeddings;
* :mod:`~bioseq.multiomic.baselines` -- k-mer ridge, DeePNAP-style CNN, residue composition.

Submodules import torch themselves; importing this package does not.
"""
