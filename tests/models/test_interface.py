"""The shared model interface: configs, registry, heads, persistence, generation."""

import json

import pytest
import torch

from bioseq.models import (
    CausalLM, ConfigError, Embedder, MaskedLM, SequenceClassifier, TokenClassifier,
    build_backbone, list_backbones, list_sizes, load_config, load_pretrained, mask_tokens,
)
from bioseq.models.heads import sample_next


def test_every_named_size_builds_and_roundtrips_json():
    for name in list_sizes():
        cfg = load_config(name)
        again = load_config(json.loads(cfg.to_json()))
        assert again == cfg, name
    assert "transformer" in list_backbones()


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="n_head"):
        load_config("transformer-tiny", n_head=3)
    with pytest.raises(ConfigError, match="unknown config keys"):
        load_config({"arch": "transformer", "nope": 1})
    with pytest.raises(ConfigError, match="involution"):
        load_config("transformer-tiny", vocab_size=4, pad_token_id=0, complement_map=[1, 2, 3, 0])


def test_causal_transformer_does_not_look_ahead():
    torch.manual_seed(0)
    bb = build_backbone("transformer-tiny", vocab_size=12).eval()
    x = torch.randint(7, 11, (2, 32))
    y = x.clone()
    y[:, 20:] = 7
    h1, h2 = bb(x), bb(y)
    assert torch.allclose(h1[:, :20], h2[:, :20], atol=1e-5)
    assert not torch.allclose(h1[:, 20:], h2[:, 20:], atol=1e-3)


def test_padding_mask_makes_padded_batch_match_unpadded():
    torch.manual_seed(0)
    bb = build_backbone("transformer-tiny", vocab_size=12, bidirectional=True).eval()
    x = torch.randint(7, 11, (1, 10))
    padded = torch.cat([x, torch.full((1, 6), 4)], 1)
    mask = padded != 4
    h = bb(padded, attention_mask=mask)
    assert torch.allclose(h[:, :10], bb(x), atol=1e-5)


@pytest.mark.parametrize("head", [CausalLM, MaskedLM, SequenceClassifier, TokenClassifier, Embedder])
def test_save_load_roundtrip_bit_exact(tmp_path, head):
    torch.manual_seed(0)
    model = head(build_backbone("transformer-tiny", vocab_size=12)).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    again = load_pretrained(tmp_path).eval()
    assert type(again) is head
    x = torch.randint(7, 11, (2, 16))
    a, b = model(x), again(x)
    out_a = a.logits if a.logits is not None else a.embeddings
    out_b = b.logits if b.logits is not None else b.embeddings
    assert torch.equal(out_a, out_b)


def test_classifier_from_pretrained_lm_keeps_backbone(tmp_path):
    lm = CausalLM(build_backbone("transformer-tiny", vocab_size=12))
    lm.save_pretrained(tmp_path)
    clf = SequenceClassifier.from_pretrained(tmp_path, num_labels=3)
    for k, v in lm.backbone.state_dict().items():
        assert torch.equal(v, clf.backbone.state_dict()[k])
    assert clf.classifier[1].out_features == 3


def test_causal_lm_learns_a_repeating_pattern():
    torch.manual_seed(0)
    model = CausalLM(build_backbone("transformer-tiny", vocab_size=12))
    x = torch.tensor([[7, 8, 9, 10] * 8] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(x, labels=x).loss
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    out = model.generate(x[:1, :8], max_new_tokens=8, do_sample=False)
    assert out[0, 8:].tolist() == [7, 8, 9, 10, 7, 8, 9, 10]


def test_sampling_controls():
    logits = torch.tensor([[0.0, 1.0, 5.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    assert sample_next(logits, do_sample=False).item() == 2
    draws = {sample_next(logits, top_k=1, generator=g).item() for _ in range(20)}
    assert draws == {2}
    draws = {sample_next(logits, top_p=0.5, generator=g).item() for _ in range(20)}
    assert draws == {2}


def test_mask_tokens_rates():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(7, 11, (64, 256))
    out, labels = mask_tokens(x, 3, torch.ones_like(x, dtype=torch.bool), torch.arange(7, 11), 0.15, g)
    sel = labels != -100
    assert abs(sel.float().mean().item() - 0.15) < 0.01
    assert torch.equal(labels[sel], x[sel])
    assert abs((out[sel] == 3).float().mean().item() - 0.8) < 0.03


def test_positions_pooling_is_position_specific_and_ignores_padding(tmp_path):
    torch.manual_seed(0)
    bb = build_backbone("transformer-tiny", vocab_size=12, d_model=32, n_head=2)
    clf = SequenceClassifier(bb, num_labels=3, pooling="positions", seq_len=6, position_dim=4, dropout=0.0).eval()
    mean = SequenceClassifier(bb, num_labels=3, pooling="mean", dropout=0.0).eval()
    h = torch.randn(2, 6, 32)
    perm = torch.tensor([1, 0, 2, 3, 5, 4])
    # Swapping two positions' features changes a position-specific head, never a mean-pooled one.
    assert not torch.allclose(clf.head(h)[0], clf.head(h[:, perm])[0])
    torch.testing.assert_close(mean.head(h)[0], mean.head(h[:, perm])[0])
    # Padded positions contribute nothing, whatever their hidden state.
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]] * 2, dtype=torch.bool)
    h2 = h.clone()
    h2[:, 4:] = 100.0
    torch.testing.assert_close(clf.head(h, mask)[0], clf.head(h2, mask)[0])
    assert clf.head(h)[1].shape == (2, 24)
    x = torch.randint(7, 11, (2, 6))
    assert clf(x).logits.shape == (2, 3)
    with pytest.raises(ValueError, match="built for 6 tokens"):
        clf(torch.randint(7, 11, (2, 7)))
    # The head's settings survive save / load, so the reloaded model gives the same logits.
    clf.save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    assert (again.pooling, again.seq_len, again.classifier[0].out_features) == ("positions", 6, 4)
    assert torch.equal(again(x).logits, clf(x).logits)


def test_classifier_rejects_bad_pooling():
    bb = build_backbone("transformer-tiny", vocab_size=12, d_model=32, n_head=2)
    with pytest.raises(ValueError, match="unknown pooling"):
        SequenceClassifier(bb, pooling="max")
    with pytest.raises(ValueError, match="needs seq_len"):
        SequenceClassifier(bb, pooling="positions")
