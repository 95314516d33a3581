"""One-change-at-a-time pilot for the splice model: training-time distribution, input features and
learning rate, each trained for a few hundred steps, scored by the class-conditional prior the
network learned at t = 0 (p(G at 30 | EI), 0.999 in the data) and by the junction dinucleotides of
60 designs per class (40 Euler steps, unguided and classifier-free guidance w = 3).

    python benchmarks/dfm_splice_pilot.py 600 0:2e-3:log 2:2e-3:log 2:2e-3:expanded 2:5e-3:log

Each argument is ``time_scale:lr:features`` (time_scale 0: uniform times on [0, 8]).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from bioseq.design import DilatedCNN, DirichletPath, FlowModel, Guidance, sample, train_flow
from bioseq.design.data import load_sequence_csv, stratified_split

CSV = Path(__file__).resolve().parents[1] / "data" / "classification" / "splice_uci" / "uci_splice_junction_statlog.csv"


def main() -> None:
    torch.set_num_threads(1)
    ids, lab, names = load_sequence_csv(CSV)
    tr, te = stratified_split(lab, (0.8, 0.2), seed=0)
    steps = int(sys.argv[1])
    for spec in sys.argv[2:]:
        scale, lr, feat = spec.split(":")
        torch.manual_seed(0)
        path = DirichletPath(K=4, t_max=8.0, time_scale=float(scale))
        m = FlowModel(path, DilatedCNN(K=4, d=32, num_classes=3, seq_len=60, features=feat), seq_len=60, class_names=names)
        t0 = time.time()
        train_flow(m, ids[tr], lab[tr], steps=steps, batch_size=64, lr=float(lr), cfg_dropout=0.2, log_every=0)
        ei = ids[te][lab[te] == 0]
        with torch.no_grad():  # the learned class-conditional prior at t = 0 (pure-noise input)
            x0, t = m.path.prior((len(ei), 60)), torch.zeros(len(ei), dtype=torch.float64)
            p = m(x0.float(), t, torch.zeros(len(ei), dtype=torch.long)).softmax(-1)
        out = [spec, f"{time.time() - t0:.0f}s", "p(G@30|EI,t=0)", round(float(p[:, 30, 2].mean()), 3)]
        for w in (0.0, 3.0):
            for c, pos, dn in ((0, 30, (2, 3)), (1, 28, (0, 2))):
                x = sample(m, 60, cls=c, steps=40, guidance=Guidance(w), generator=torch.Generator().manual_seed(c))
                out += [f"w{w:g}{names[c]}", round(float(((x[:, pos] == dn[0]) & (x[:, pos + 1] == dn[1])).float().mean()), 2)]
        print(*out, flush=True)


if __name__ == "__main__":
    main()
