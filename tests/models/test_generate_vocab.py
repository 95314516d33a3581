"""CausalLM.generate never samples padding or ids the tokenizer cannot decode."""

from __future__ import annotations

import torch

from bioseq.models import CausalLM, build_backbone
from bioseq.tokenization import get_tokenizer


def test_generate_stays_inside_the_tokenizer_vocabulary():
    tok = get_tokenizer("dna-char")  # 12 tokens; the default backbone vocabulary is 16
    torch.manual_seed(0)
    model = CausalLM(build_backbone("transformer-tiny", d_model=16, n_layer=1, n_head=2))
    with torch.no_grad():  # push the padding id and the ids past the tokenizer's end to the top
        model.backbone.embedding.weight[[tok.pad_token_id, 13, 14, 15]] *= 50
    prompt = torch.as_tensor(tok.encode("ACGTACGT", add_special_tokens=False))[None].repeat(4, 1)
    g = torch.Generator().manual_seed(0)
    free = model.generate(prompt, max_new_tokens=64, generator=g)
    assert (free[:, 8:] >= tok.vocab_size).any()  # without the bound, the padded ids do come up
    out = model.generate(prompt, max_new_tokens=64, generator=g, vocab_size=tok.vocab_size)
    new = out[:, 8:]
    assert int(new.max()) < tok.vocab_size and not (new == tok.pad_token_id).any()
    for row in out:
        tok.decode(row.numpy())  # every id decodes
