"""bioseq.hf: exported checkpoints load through the transformers Auto classes and match the
native models; tokenizers load as PreTrainedTokenizerFast with the same ids."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

import bioseq.hf as bhf  # noqa: E402  (registers the Auto classes)
from bioseq.models import CausalLM, MaskedLM, SequenceClassifier, build_backbone, load_config  # noqa: E402
from bioseq.tokenization import get_tokenizer  # noqa: E402


def _backbone(arch="transformer-tiny", **kw):
    torch.manual_seed(0)
    return build_backbone(load_config(arch, d_model=32, n_layer=2, **kw))


def test_automodel_matches_native(tmp_path):
    from transformers import AutoModel, AutoModelForMaskedLM

    lm = MaskedLM(_backbone(n_head=2, bidirectional=True)).eval()
    bhf.export_hf(lm, tmp_path, tokenizer="dna-char")
    ids = torch.randint(7, 11, (3, 17))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 12:] = False
    ids[1, 12:] = 4
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, bhf.BioseqModel)
    torch.testing.assert_close(base(ids, attention_mask=mask.long()).last_hidden_state,
                               lm.backbone(ids, attention_mask=mask), rtol=0, atol=0)
    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    v = lm.config.vocab_size
    torch.testing.assert_close(mlm(ids).logits[..., :v], lm(ids).logits[..., :v], rtol=0, atol=0)
    assert mlm.lm_head.weight is mlm.bioseq.backbone.embedding.weight  # tie survives loading


def test_classifier_round_trip_and_from_lm(tmp_path):
    from transformers import AutoModelForSequenceClassification

    clf = SequenceClassifier(_backbone("hyena-tiny"), num_labels=3, pooling="last").eval()
    bhf.export_hf(clf, tmp_path / "clf")
    hf_clf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
    ids = torch.randint(7, 11, (2, 20))
    labels = torch.tensor([0, 2])
    out, ref = hf_clf(ids, labels=labels), clf(ids, labels=labels)
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0)
    torch.testing.assert_close(out.loss, ref.loss)
    # A classifier built from an exported LM keeps the LM's backbone weights.
    lm = CausalLM(_backbone("hyena-tiny")).eval()
    bhf.export_hf(lm, tmp_path / "lm")
    new = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lm", num_labels=2).eval()
    torch.testing.assert_close(new.bioseq.backbone(ids), lm.backbone(ids), rtol=0, atol=0)
    assert new(ids).logits.shape == (2, 2)


def test_positions_classifier_round_trip(tmp_path):
    from transformers import AutoModelForSequenceClassification

    clf = SequenceClassifier(_backbone(n_head=2, bidirectional=True), num_labels=3, pooling="positions",
                             seq_len=20, position_dim=4).eval()
    bhf.export_hf(clf, tmp_path)
    hf_clf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = torch.randint(7, 11, (2, 20))
    torch.testing.assert_close(hf_clf(ids).logits, clf(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name,text", [("dna-char", "ACGTNacgtu"), ("protein-esm", "MKTAYIAKQRqisfvk")])
def test_tokenizer_same_ids(tmp_path, name, text):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    bhf.hf_tokenizer(name).save_pretrained(tmp_path)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(hf_tok, PreTrainedTokenizerFast)
    native = get_tokenizer(name)
    assert hf_tok(text)["input_ids"] == native.encode(text).tolist()
    assert hf_tok.pad_token_id == native.pad_token_id and hf_tok.mask_token_id == native.mask_token_id


def test_import_bioseq_does_not_import_transformers():
    code = "import sys, bioseq, bioseq.finetune; assert 'transformers' not in sys.modules and 'peft' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
