import torch

from bioseq.eval import forward_flops_per_token
from bioseq.models import CausalLM, build_backbone


def test_transformer_flops_match_the_closed_form():
    # per token: 2 FLOPs per weight multiply-add (qkv 3d^2, out d^2, MLP 8d^2 per layer; LM head d*V)
    # plus the attention products QK^T and AV over the full L x L score matrix (2 * 2*L*d per layer)
    d, n_layer, L = 64, 3, 96
    model = CausalLM(build_backbone("transformer-tiny", d_model=d, n_layer=n_layer))
    vocab = model.lm_head.out_features
    ids = torch.randint(7, 11, (2, L))
    expected = 2 * (n_layer * 12 * d * d + d * vocab) + n_layer * 4 * L * d
    assert forward_flops_per_token(model, ids) == expected
    assert model.training  # the mode is restored


def test_attention_cost_grows_with_length():
    model = CausalLM(build_backbone("transformer-tiny", d_model=32, n_layer=1))
    short, long = (forward_flops_per_token(model, torch.randint(7, 11, (1, L))) for L in (32, 64))
    assert long - short == 4 * 32 * 32  # 4 * d * (64 - 32) more per token
