"""Multi-omic protein-nucleic-acid benchmark: dG, ddG, binding residues, attribution (one run).

    nice -n 10 python benchmarks/multiomic.py --shared ../shared/data [--init runs/multiomic/last]
    python benchmarks/multiomic.py --quick            # smoke run on a subset, ~1 min on CPU

Every number comes from this one run, baselines included, on the same folds:

* dG (kcal/mol): Pearson, Spearman, RMSE, MAE under protein-disjoint 5-fold CV (proteins
  clustered at >= 40% identity, clusters kept whole) and, beside it, a leaky random 5-fold split
  over rows. Models: mean predictor, k-mer composition + ridge, k-mer + gradient boosting, a
  DeePNAP-style CNN, and the multi-omic Transformer (joint tagged pair, optionally initialised
  from a multi-omic MLM checkpoint); with ``--protein-model`` (a shipped protein masked LM such
  as ``protein-mlm-uniprot-tiny``) also gradient boosting on k-mers + the model's frozen
  mean-pooled protein embedding, and the same with the architecture's random weights (control).
* ddG: pairs derived from ProNAB (same protein, equal-length nucleic acids 1-2 substitutions
  apart), 5-fold by the same protein clusters; siamese model with the consistency loss vs the
  ridge dG model's difference and the zero predictor.
* Binding residues: train on DNAreader's training+validation files, test on its test files and on
  the 72 HADDOCK chains, each test protein kept only if < 40% identical to every training
  protein; AUROC/AUPRC vs a composition/position logistic regression (with ``--protein-model``:
  also that regression with the protein masked LM's per-residue states added).
* Attribution: integrated gradients of a dG model trained on ProNAB proteins < 40% identical to
  the HADDOCK chains; residues ranked by attribution, scored against the 4.5 A contact labels.

Writes the markdown report atomically (default ``benchmarks/results/multiomic.md``).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bioseq.models import build_backbone, load_pretrained  # noqa: E402
from bioseq.multiomic.attribution import integrated_gradients  # noqa: E402
from bioseq.multiomic.baselines import (  # noqa: E402
    fit_deepnap,
    pair_kmer_features,
    predict_deepnap,
    residue_window_features,
)
from bioseq.multiomic.data import (  # noqa: E402
    IGNORE_INDEX,
    derive_ddg_pairs,
    load_contacts,
    load_pronab,
    load_residue_labels,
)
from bioseq.multiomic.heads import BindingSiteClassifier, PairRegressor, SiameseDDG  # noqa: E402
from bioseq.multiomic.split import (  # noqa: E402
    DEFAULT_IDENTITY,
    identity_clusters,
    pairwise_identity,
    protein_disjoint_folds,
)
from bioseq.multiomic.tokens import encode_pair, encode_single, get_joint_vocab, pad_batch  # noqa: E402

TOK = get_joint_vocab()


# ---------------------------------------------------------------------------------- metrics
def reg_metrics(y, p) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    y, p = np.asarray(y, float), np.asarray(p, float)
    const = np.std(p) < 1e-9
    return {"pearson": float("nan") if const else float(pearsonr(y, p)[0]),
            "spearman": float("nan") if const else float(spearmanr(y, p)[0]),
            "rmse": float(np.sqrt(np.mean((y - p) ** 2))), "mae": float(np.mean(np.abs(y - p)))}


def cls_metrics(y, s) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = np.asarray(y), np.asarray(s, float)
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s)), "prevalence": float(y.mean())}


def fmt(x: float) -> str:
    return "nan" if x != x else f"{x:.3f}"


# ---------------------------------------------------------------------------------- models
class Ctx:
    """Run-wide settings: device, model size, budget, optional pretrained backbone."""

    def __init__(self, args):
        self.device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.args = args
        self.init_backbone = None
        if args.init:
            self.init_backbone = load_pretrained(args.init).backbone.cpu()
            if self.init_backbone.config.vocab_size != TOK.vocab_size:
                raise SystemExit(f"--init {args.init}: vocab_size {self.init_backbone.config.vocab_size} is not the joint vocabulary's {TOK.vocab_size}")

    def backbone(self, seed: int):
        torch.manual_seed(seed)
        if self.init_backbone is not None:
            bb = copy.deepcopy(self.init_backbone)
        else:
            a = self.args
            bb = build_backbone("transformer-tiny", vocab_size=TOK.vocab_size, pad_token_id=TOK.pad_token_id,
                                bidirectional=True, d_model=a.d_model, n_layer=a.n_layer, n_head=a.n_head)
        return bb

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else torch.autocast("cpu", enabled=False)


def _batches(lengths: np.ndarray, batch_tokens: int, rng: np.random.Generator | None):
    """Length-bucketed batches of indices (about ``batch_tokens`` padded tokens each)."""
    order = np.argsort(lengths, kind="stable")
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    if rng is not None:
        rng.shuffle(out)
    return out


def _tensor_batch(seqs, idx, device):
    ids, mask = pad_batch([seqs[i] for i in idx], TOK.pad_token_id)
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def encode_records(recs, max_protein_len):
    return [encode_pair(TOK, r.protein, r.na, r.na_type, r.na2, max_protein_len)[0] for r in recs]


def train_pair_regressor(ctx: Ctx, seqs, y, seed: int) -> PairRegressor:
    a = ctx.args
    y = np.asarray(y, np.float32)
    model = PairRegressor(ctx.backbone(seed), hidden=128, dropout=0.1, target_mean=float(y.mean()),
                          target_std=float(y.std() + 1e-6)).to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    lens = np.array([len(s) for s in seqs])
    n_rows = min(len(seqs), a.train_rows)  # rows drawn per epoch: the CPU budget
    n_steps = a.epochs * len(_batches(lens[:n_rows], a.batch_tokens, None)) + a.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=max(1, n_steps), pct_start=0.1)
    model.train()
    for _ in range(a.epochs):
        draw = rng.choice(len(seqs), n_rows, replace=False)
        for b in _batches(lens[draw], a.batch_tokens, rng):
            idx = draw[b]
            ids, mask = _tensor_batch(seqs, idx, ctx.device)
            with ctx.autocast():
                loss = model(ids, mask, labels=torch.from_numpy(y[idx]).to(ctx.device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict_pairs(ctx: Ctx, model, seqs) -> np.ndarray:
    lens = np.array([len(s) for s in seqs])
    out = np.zeros(len(seqs), np.float32)
    for idx in _batches(lens, ctx.args.batch_tokens * 2, None):
        ids, mask = _tensor_batch(seqs, idx, ctx.device)
        with ctx.autocast():
            out[idx] = model(ids, mask).logits.float().cpu().numpy()
    return out


# ---------------------------------------------------------------------------------- dG
def cached_identity(cache: Path, a: list[str], b: list[str] | None = None) -> np.ndarray:
    """:func:`pairwise_identity`, memoised on disk by a hash of the sequences (it is the slow part
    of a rerun: ~30 s per 750 x 750 proteins on one core)."""
    import hashlib

    h = hashlib.sha1(("\n".join(a) + "|" + ("\n".join(b) if b is not None else "<sym>")).encode()).hexdigest()[:16]
    f = cache / f"identity_{h}.npy"
    if f.exists():
        return np.load(f)
    m = pairwise_identity(a, b)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{f.name}.{os.getpid()}.npy"
    np.save(tmp, m)
    os.replace(tmp, f)
    return m


def protein_embeddings(args, proteins: list[str], per_token: bool = False, random_weights: bool = False):
    """Frozen embeddings of ``proteins`` by ``--protein-model`` (mean-pooled ``(N, d)``, or
    per residue), or by the same architecture with seeded random weights; cached on disk."""
    import hashlib

    import bioseq
    from bioseq.embeddings import load_model_and_tokenizer
    from bioseq.models import MaskedLM

    model, tok, source = load_model_and_tokenizer(args.protein_model, modality="protein")
    ident = (source / "model.safetensors").stat().st_mtime_ns if source is not None else 0
    key = hashlib.sha1(f"{args.protein_model}|{ident}|{per_token}|{random_weights}|".encode() + "\n".join(proteins).encode()).hexdigest()[:16]
    f = Path(args.cache) / f"protemb_{key}.npz"
    if f.exists():
        z = np.load(f)
        return [z[f"a{i}"] for i in range(len(proteins))] if per_token else z["a"]
    if random_weights:
        torch.manual_seed(0)
        model = MaskedLM(type(model.backbone)(model.backbone.config)).eval()
    out = bioseq.embed(model, proteins, tokenizer=tok, window=512, batch_size=8, per_token=per_token)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.parent / f".{f.name}.{os.getpid()}.npz"
    np.savez(tmp, **({f"a{i}": a for i, a in enumerate(out)} if per_token else {"a": out}))
    os.replace(tmp, f)
    return out


def keep_dissimilar(ctx: Ctx, candidates: list[str], reference: list[str]) -> np.ndarray:
    """Keep-mask over ``candidates``: False where one reaches the identity threshold to any
    ``reference`` protein (the held-out filter; same rule as ``split.drop_similar``, cached)."""
    uniq, ref = sorted(set(candidates)), sorted(set(reference))
    ok = dict(zip(uniq, cached_identity(Path(ctx.args.cache), uniq, ref).max(1) < ctx.args.threshold, strict=True))
    return np.array([ok[c] for c in candidates], dtype=bool)


PLM_DG = {"pretrained": "k-mer + protein-MLM embedding, gradient boosting",
          "random": "k-mer + random-weight embedding, gradient boosting (control)"}


def dg_fold(ctx: Ctx, recs, X, seqs, folds, k: int) -> dict[str, dict[str, float]]:
    """Train every dG model on the folds != k, score on fold k."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = ctx.args
    y = np.array([r.dg for r in recs], np.float32)
    tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    preds = {"mean predictor": np.full(len(te), y[tr].mean())}
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 12))).fit(X[tr], y[tr])
    preds["k-mer + ridge"] = ridge.predict(X[te])
    gb = HistGradientBoostingRegressor(max_iter=a.gb_iters, learning_rate=0.1, random_state=k).fit(X[tr], y[tr])
    preds["k-mer + gradient boosting"] = gb.predict(X[te])
    for kind, XE in (_G.get("XE") or {}).items():  # the same booster on k-mers + a frozen protein embedding
        gbe = HistGradientBoostingRegressor(max_iter=a.gb_iters, learning_rate=0.1, random_state=k).fit(XE[tr], y[tr])
        preds[PLM_DG[kind]] = gbe.predict(XE[te])
    sub = np.random.default_rng(k).choice(tr, min(len(tr), a.train_rows), replace=False)
    P, Q = [recs[i] for i in sub], [recs[i] for i in te]
    cnn, mu, sd = fit_deepnap([r.protein for r in P], [r.na + r.na2 for r in P], [r.na_type == "RNA" for r in P],
                              y[sub], epochs=a.cnn_epochs, seed=k, device=ctx.device, channels=a.cnn_channels,
                              lp=a.max_protein_len)
    preds["DeePNAP-style CNN"] = predict_deepnap(cnn, mu, sd, [r.protein for r in Q], [r.na + r.na2 for r in Q],
                                                 [r.na_type == "RNA" for r in Q], device=ctx.device, lp=a.max_protein_len)
    model = train_pair_regressor(ctx, [seqs[i] for i in tr], y[tr], seed=k)
    preds["multi-omic Transformer"] = predict_pairs(ctx, model, [seqs[i] for i in te])
    return {n: reg_metrics(y[te], preds[n]) for n in preds}


def dg_report(n_recs: int, results: dict[str, list[dict]], report: list[str]) -> None:
    report.append("## dG (kcal/mol), 5-fold CV\n")
    report.append(f"{n_recs} ProNAB measurements after cleaning; metrics are the mean (± sd) over the 5 test folds.\n")
    for split, per_fold in results.items():
        report.append(f"\n### {split}\n\n| model | Pearson r | Spearman | RMSE | MAE |\n|---|---|---|---|---|")
        for n in per_fold[0]:
            cells = []
            for key in ("pearson", "spearman", "rmse", "mae"):
                v = np.array([m[n][key] for m in per_fold], float)
                cells.append(f"{fmt(np.nanmean(v))} ± {fmt(np.nanstd(v))}" if not np.isnan(v).all() else "n/a")
            report.append(f"| {n} | " + " | ".join(cells) + " |")
    report.append("")


# ---------------------------------------------------------------------------------- ddG
def run_ddg(ctx: Ctx, recs, rec_folds, pairs, pair_folds) -> list[str]:
    report: list[str] = []
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = ctx.args
    ddg = np.array([p.ddg for p in pairs], np.float32)
    enc = lambda p, na: encode_pair(TOK, p.protein, na, p.na_type, "", a.max_protein_len)[0]  # noqa: E731
    wt = [enc(p, p.na_wt) for p in pairs]
    mut = [enc(p, p.na_mut) for p in pairs]
    feats = lambda p, na: pair_kmer_features(p.protein, na, "", p.na_type == "RNA")  # noqa: E731
    Xw = np.stack([feats(p, p.na_wt) for p in pairs])
    Xm = np.stack([feats(p, p.na_mut) for p in pairs])
    preds = {"zero (no change)": np.zeros(len(pairs)), "k-mer ridge dG difference": np.zeros(len(pairs)),
             "siamese multi-omic (consistency loss)": np.zeros(len(pairs))}
    Xr = np.stack([pair_kmer_features(r.protein, r.na, r.na2, r.na_type == "RNA") for r in recs])
    yr = np.array([r.dg for r in recs], np.float32)
    for k in range(a.folds):
        tr, te = np.flatnonzero(pair_folds != k), np.flatnonzero(pair_folds == k)
        if len(te) == 0:
            continue
        # ridge dG model on every ProNAB record outside the test fold's protein clusters
        keep = rec_folds != k
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 12))).fit(Xr[keep], yr[keep])
        preds["k-mer ridge dG difference"][te] = ridge.predict(Xm[te]) - ridge.predict(Xw[te])
        # siamese: shared PairRegressor scoring wild type and mutant, consistency loss
        tr = np.random.default_rng(k).permutation(tr)[: a.ddg_train_pairs]  # CPU budget
        dgw = np.array([pairs[i].dg_wt for i in tr], np.float32)
        dgm = np.array([pairs[i].dg_mut for i in tr], np.float32)
        allv = np.concatenate([dgw, dgm])
        reg = PairRegressor(ctx.backbone(100 + k), hidden=128, dropout=0.1, target_mean=float(allv.mean()),
                            target_std=float(allv.std() + 1e-6))
        model = SiameseDDG(reg, dg_weight=0.5).to(ctx.device)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
        rng = np.random.default_rng(k)
        bs = max(2, a.batch_tokens // (2 * max(len(s) for s in wt)))
        model.train()
        for _ in range(a.ddg_epochs):
            for idx in np.array_split(rng.permutation(tr), max(1, len(tr) // bs)):
                w_ids, w_mask = _tensor_batch(wt, idx, ctx.device)
                m_ids, m_mask = _tensor_batch(mut, idx, ctx.device)
                with ctx.autocast():
                    loss = model({"input_ids": w_ids, "attention_mask": w_mask}, {"input_ids": m_ids, "attention_mask": m_mask},
                                 torch.tensor([pairs[i].dg_wt for i in idx], device=ctx.device),
                                 torch.tensor([pairs[i].dg_mut for i in idx], device=ctx.device)).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
        model.eval()
        with torch.no_grad():
            for idx in np.array_split(te, max(1, len(te) // bs)):
                w_ids, w_mask = _tensor_batch(wt, idx, ctx.device)
                m_ids, m_mask = _tensor_batch(mut, idx, ctx.device)
                with ctx.autocast():
                    out = model({"input_ids": w_ids, "attention_mask": w_mask}, {"input_ids": m_ids, "attention_mask": m_mask})
                preds["siamese multi-omic (consistency loss)"][idx] = out.logits.float().cpu().numpy()
        print(f"ddG fold {k}: {len(te)} test pairs", flush=True)
    report.append("## ddG (kcal/mol), held-out proteins\n")
    report.append(f"{len(pairs)} pairs from {len({p.protein for p in pairs})} proteins; 5 folds by the dG protein clusters; "
                  f"the siamese model sees at most {a.ddg_train_pairs} training pairs per fold for {a.ddg_epochs} epochs; "
                  "metrics pooled over the out-of-fold predictions.\n")
    report.append("| model | Pearson r | MAE |\n|---|---|---|")
    for n, p in preds.items():
        m = reg_metrics(ddg, p)
        report.append(f"| {n} | {fmt(m['pearson'])} | {fmt(m['mae'])} |")
    report.append("")
    return report


# ---------------------------------------------------------------------------------- residues
def _chunks(items, max_len):
    """Split proteins into consecutive chunks of <= max_len residues: (protein chunk, labels chunk, item index)."""
    out = []
    for j, r in enumerate(items):
        for s in range(0, len(r.protein), max_len):
            out.append((r.protein[s : s + max_len], np.array(r.labels[s : s + max_len]), j))
    return out


def train_binding(ctx: Ctx, train_items, seed: int) -> BindingSiteClassifier:
    a = ctx.args
    ch = _chunks(train_items, a.max_protein_len)
    seqs = [encode_single(TOK, p, "protein") for p, _, _ in ch]
    labels = [np.concatenate([[IGNORE_INDEX] * 2, y, [IGNORE_INDEX]]) for _, y, _ in ch]  # [CLS] <protein> .. [SEP]
    pos = np.concatenate([y[y != IGNORE_INDEX] for _, y, _ in ch])
    model = BindingSiteClassifier(ctx.backbone(seed), hidden=64, dropout=0.1,
                                  pos_weight=float((1 - pos.mean()) / max(pos.mean(), 1e-3))).to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    lens = np.array([len(s) for s in seqs])
    model.train()
    for _ in range(a.residue_epochs):
        for idx in _batches(lens, a.batch_tokens, rng):
            ids, mask = _tensor_batch(seqs, idx, ctx.device)
            lab, _ = pad_batch([labels[i] for i in idx], IGNORE_INDEX)
            with ctx.autocast():
                loss = model(ids, mask, labels=torch.from_numpy(lab).to(ctx.device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return model.eval()


@torch.no_grad()
def predict_binding(ctx: Ctx, model, items) -> list[np.ndarray]:
    out = [np.zeros(len(r.protein), np.float32) for r in items]
    for j, r in enumerate(items):
        for s in range(0, len(r.protein), ctx.args.max_protein_len):
            p = r.protein[s : s + ctx.args.max_protein_len]
            ids = torch.from_numpy(encode_single(TOK, p, "protein"))[None].to(ctx.device)
            with ctx.autocast():
                out[j][s : s + len(p)] = model(ids).logits[0, 2 : 2 + len(p)].float().cpu().numpy()
    return out


def fit_residue_lr(train_items, features):
    """Class-balanced logistic regression on standardised per-residue ``features(items)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.concatenate(features(train_items))
    y = np.concatenate([np.array(r.labels) for r in train_items])
    keep = y != IGNORE_INDEX
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1, class_weight="balanced")).fit(X[keep], y[keep])


def fit_composition_baseline(train_items):
    """The composition/position baseline of the attribution section (unscaled, C = 1)."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([residue_window_features(r.protein) for r in train_items])
    y = np.concatenate([np.array(r.labels) for r in train_items])
    keep = y != IGNORE_INDEX
    return LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced").fit(X[keep], y[keep])


def score_items(items, scores) -> dict[str, float]:
    y = np.concatenate([np.array(r.labels) for r in items])
    s = np.concatenate(scores)
    keep = y != IGNORE_INDEX
    return cls_metrics(y[keep], s[keep])


def run_residues(ctx: Ctx, shared: Path) -> list[str]:
    report: list[str] = []
    d = shared / "protein_dna/dnareader_residue_labels"
    train = dnareader_train(shared, ctx.args.quick)
    tests = {"DNAreader test sets": [r for f in ("TestingDataset1", "TestingDataset2") for r in load_residue_labels(d / f"{f}.txt")],
             "HADDOCK 72 chains (4.5 A contacts)": load_contacts(shared / "protein_dna/haddock_pdna_contacts/pdna_benchmark_contacts.tsv")}
    if ctx.args.quick:
        tests = {k: v[:15] for k, v in tests.items()}
    # test proteins similar to any training protein are dropped
    t0 = time.time()
    train_seqs = [r.protein for r in train]
    held = {}
    for name, items in tests.items():
        keep = keep_dissimilar(ctx, [r.protein for r in items], train_seqs)
        held[name] = [r for r, k in zip(items, keep, strict=True) if k and any(y == 1 for y in r.labels)]
        print(f"residues {name}: {len(held[name])}/{len(items)} held out (< {DEFAULT_IDENTITY:.0%} identity to training)", flush=True)
    print(f"residues identity filter: {time.time() - t0:.0f}s", flush=True)
    # per-residue logistic regressions: window composition/position features, and with
    # --protein-model the same features + the protein masked LM's per-residue states
    feature_sets = {"composition/position logistic regression": lambda items: [residue_window_features(r.protein) for r in items]}
    if ctx.args.protein_model:
        # every protein embedded once (the learning curve reuses them for its subsets)
        every = sorted({r.protein for r in train} | {r.protein for items in held.values() for r in items})
        states = dict(zip(every, protein_embeddings(ctx.args, every, per_token=True), strict=True))

        def plm_features(items):
            return [np.concatenate([residue_window_features(r.protein), states[r.protein]], 1) for r in items]

        feature_sets["composition/position + protein-MLM states, logistic regression"] = plm_features

    def score_lr(fit, feats, items):
        return score_items(items, [fit.decision_function(x) for x in feats(items)])

    fits = {n: fit_residue_lr(train, f) for n, f in feature_sets.items()}
    model = train_binding(ctx, train, seed=0)
    report.append("## Binding residues, held-out proteins\n")
    report.append(f"Trained on {len(train)} DNAreader training/validation proteins; test proteins kept only when "
                  f"< {DEFAULT_IDENTITY:.0%} identical to every training protein. Per-residue scores pooled over proteins.\n")
    report.append("| test set | proteins | residues | positives | model | AUROC | AUPRC |\n|---|---|---|---|---|---|---|")
    full = {}
    for name, items in held.items():
        n_res = sum(sum(y != IGNORE_INDEX for y in r.labels) for r in items)
        rows = [(n, score_lr(fits[n], f, items)) for n, f in feature_sets.items()]
        rows.append(("multi-omic Transformer, binding-site head", score_items(items, predict_binding(ctx, model, items))))
        for label, mm in rows:
            full[(label, name)] = mm["auroc"]
            report.append(f"| {name} | {len(items)} | {n_res} | {mm['prevalence']:.3f} | {label} | {fmt(mm['auroc'])} | {fmt(mm['auprc'])} |")
    report.append("")
    if ctx.args.quick:
        return report
    # learning curve: the regressions on nested fractions of the training proteins (whole identity
    # clusters, two draws below the full set): does more data still help?
    clusters = identity_clusters(train_seqs, identity_matrix=cached_identity(Path(ctx.args.cache), train_seqs))
    report.append("### Learning curve (AUROC on the held-out proteins vs training proteins)\n")
    report.append(f"Training proteins drawn as whole clusters at {DEFAULT_IDENTITY:.0%} identity ({clusters.max() + 1} clusters); "
                  "mean of 2 draws below the full set.\n")
    cols = [(n, t) for n in feature_sets for t in held]
    report.append("| fraction | proteins | DNA-binding residues | " + " | ".join(f"{n}: {t}" for n, t in cols) + " |")
    report.append("|---|---|---|" + "---|" * len(cols))
    for frac in (0.125, 0.25, 0.5):
        got: dict = {c: [] for c in cols}
        sizes = []
        for draw in range(2):
            pick = set(np.random.default_rng(draw).permutation(clusters.max() + 1)[: max(1, int(frac * (clusters.max() + 1)))].tolist())
            sub = [r for r, c in zip(train, clusters, strict=True) if c in pick]
            sizes.append((len(sub), sum(sum(y == 1 for y in r.labels) for r in sub)))
            for n, f in feature_sets.items():
                fit = fit_residue_lr(sub, f)
                for t, items in held.items():
                    got[(n, t)].append(score_lr(fit, f, items)["auroc"])
        report.append(f"| {frac:g} | {np.mean([a for a, _ in sizes]):.0f} | {np.mean([b for _, b in sizes]):.0f} | "
                      + " | ".join(fmt(np.mean(got[c])) for c in cols) + " |")
    n_pos = sum(sum(y == 1 for y in r.labels) for r in train)
    report.append(f"| 1 | {len(train)} | {n_pos} | " + " | ".join(fmt(full[c]) for c in cols) + " |")
    report.append("")
    return report


# ---------------------------------------------------------------------------------- attribution
def dnareader_train(shared: Path, quick: bool = False):
    d = shared / "protein_dna/dnareader_residue_labels"
    train = [r for f in ("TrainingDataset1A", "TrainingDataset1B", "TrainingDataset2", "ValidationDataset1", "ValidationDataset2")
             for r in load_residue_labels(d / f"{f}.txt")]
    seen, uniq = set(), []
    for r in train:  # the files repeat some proteins
        if r.protein not in seen:
            seen.add(r.protein)
            uniq.append(r)
    return uniq[:40] if quick else uniq


def run_attribution(ctx: Ctx, recs, shared: Path) -> list[str]:
    report: list[str] = []
    base = fit_composition_baseline(dnareader_train(shared, ctx.args.quick))
    chains = load_contacts(shared / "protein_dna/haddock_pdna_contacts/pdna_benchmark_contacts.tsv")
    if ctx.args.quick:
        chains = chains[:6]
    keep = keep_dissimilar(ctx, [r.protein for r in recs], [c.protein for c in chains])
    train = [r for r, k in zip(recs, keep, strict=True) if k]
    print(f"attribution: dG model on {len(train)}/{len(recs)} ProNAB rows (proteins < {DEFAULT_IDENTITY:.0%} identical to the chains)", flush=True)
    seqs = encode_records(train, ctx.args.max_protein_len)
    model = train_pair_regressor(ctx, seqs, [r.dg for r in train], seed=7)
    attrs, deltas, fx = [], [], []
    fn = lambda i, m: model(i, m).logits.float()  # noqa: E731
    for c in chains:
        ids, res = encode_pair(TOK, c.protein, c.dna[0], "DNA", "", ctx.args.max_protein_len)
        x = torch.from_numpy(ids)[None].to(ctx.device)
        # baseline: residues replaced by [MASK], tags/specials/DNA unchanged -> attributions say
        # how much each residue's identity moves the predicted dG
        b = torch.where(torch.from_numpy(res >= 0)[None].to(ctx.device), torch.tensor(TOK.mask_token_id, device=ctx.device), x)
        a_, d_ = integrated_gradients(fn, model.backbone.embedding, x, None, baseline_ids=b, steps=ctx.args.ig_steps)
        with torch.no_grad():
            gap = fn(x, None) - fn(b, None)
        a_ = a_.cpu().numpy()
        full = np.zeros(len(c.protein), np.float32)
        full[res[res >= 0]] = a_[res >= 0]  # residues past max_protein_len keep 0 (ranked last)
        attrs.append(full)
        deltas.append(abs(float(d_)) / max(1e-6, abs(float(gap))))
        fx.append(float(gap))
    report.append("## Attribution (integrated gradients) vs HADDOCK contacts\n")
    report.append(f"dG model trained on {len(train)} ProNAB rows whose proteins are < {DEFAULT_IDENTITY:.0%} identical to all "
                  f"{len(chains)} chains; IG with a [MASK]-residue baseline, {ctx.args.ig_steps} trapezoid steps "
                  f"(median relative completeness error {np.median(deltas):.3g}). Scores pooled over chains.\n")
    report.append("| residue ranking | AUROC | AUPRC |\n|---|---|---|")
    rows = {
        "-IG (residues that lower dG, i.e. favour binding)": [-a for a in attrs],
        "abs(IG) (magnitude)": [np.abs(a) for a in attrs],
        "composition/position logistic regression (trained on DNAreader)": [base.decision_function(residue_window_features(c.protein)) for c in chains],
    }
    for n, s in rows.items():
        m = score_items(chains, s)
        report.append(f"| {n} | {fmt(m['auroc'])} | {fmt(m['auprc'])} |")
    report.append(f"\nContact prevalence {score_items(chains, rows['abs(IG) (magnitude)'])['prevalence']:.3f} (a random ranking's AUPRC).\n")
    return report


# ---------------------------------------------------------------------------------- main
_G: dict = {}  # run-wide data, inherited by forked workers


def _run_job(job: tuple):
    torch.set_num_threads(1)
    g, ctx = _G, _G["ctx"]
    t0 = time.time()
    if job[0] == "dg":
        out = dg_fold(ctx, g["recs"], g["X"], g["seqs"], g["splits"][job[1]], job[2])
        print(f"dG {job[1]} fold {job[2]} ({time.time() - t0:.0f}s): "
              + ", ".join(f"{n} r={m['pearson']:.3f}" for n, m in out.items()), flush=True)
        return out
    if job[0] == "ddg":
        recs, folds = g["recs"], g["folds"]
        pairs = derive_ddg_pairs(recs)
        prot_fold = {r.protein: f for r, f in zip(recs, folds, strict=True)}
        return run_ddg(ctx, recs, folds, pairs, np.array([prot_fold[p.protein] for p in pairs]))
    if job[0] == "residues":
        return run_residues(ctx, g["shared"])
    if job[0] == "attribution":
        return run_attribution(ctx, g["recs"], g["shared"])
    raise ValueError(f"unknown job {job}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("BIOSEQ_SHARED", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--init", default=None, help="multi-omic MLM checkpoint folder (recipes/pretrain_multiomic.py output)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--protein-model", default=None, help="protein masked LM (shipped name or folder) whose frozen "
                    "embeddings feed extra dG and binding-residue rows, e.g. protein-mlm-uniprot-tiny")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=DEFAULT_IDENTITY)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cnn-epochs", type=int, default=2)
    ap.add_argument("--cnn-channels", type=int, default=16)
    ap.add_argument("--train-rows", type=int, default=1000, help="training rows drawn per epoch (Transformer) / in all (CNN)")
    ap.add_argument("--ddg-epochs", type=int, default=2)
    ap.add_argument("--residue-epochs", type=int, default=2)
    ap.add_argument("--ig-steps", type=int, default=64, help="trapezoid steps of integrated gradients (completeness)")
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--max-protein-len", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4, help="parallel jobs (forked processes)")
    ap.add_argument("--gb-iters", type=int, default=60)
    ap.add_argument("--ddg-train-pairs", type=int, default=300)
    ap.add_argument("--cache", default=str(ROOT / "runs/multiomic_cache"), help="identity matrices are cached here")
    ap.add_argument("--quick", action="store_true", help="subset and 1 epoch: a smoke run")
    ap.add_argument("--parts", default="dg,ddg,residues,attribution")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/multiomic.md"))
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs = a.cnn_epochs = a.ddg_epochs = a.residue_epochs = 1
        a.d_model, a.n_layer, a.n_head, a.ig_steps, a.max_protein_len, a.train_rows = 32, 1, 2, 4, 128, 200
    torch.set_num_threads(a.threads)
    ctx = Ctx(a)
    shared = Path(a.shared)
    t_start = time.time()
    parts = set(a.parts.split(","))

    recs, rep = load_pronab(shared / "protein_dna/pronab/pronab_no_mutations.json")
    if a.quick:
        prots = sorted({r.protein for r in recs})[:40]
        recs = [r for r in recs if r.protein in set(prots)]
    uniq = sorted({r.protein for r in recs})
    t0 = time.time()
    ident = cached_identity(Path(a.cache), uniq)
    t_ident = time.time() - t0
    folds, clusters = protein_disjoint_folds([r.protein for r in recs], a.folds, a.threshold, seed=0, identity_matrix=ident)
    random_folds = np.random.default_rng(0).permutation(np.arange(len(recs)) % a.folds)
    # leakage of the random split: test rows whose protein (or a >= threshold relative) is in training
    leak = np.mean([clusters[i] in set(clusters[random_folds != random_folds[i]]) for i in range(0, len(recs), 7)])
    bb = ctx.backbone(0)
    report = [
        "# Multi-omic protein-nucleic-acid benchmark\n",
        f"Command: `python benchmarks/multiomic.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
        f"Device: {ctx.device}{' (' + torch.cuda.get_device_name() + ')' if ctx.device.type == 'cuda' else ''}, "
        f"{a.threads} CPU threads. Model: {type(bb).__name__} d_model={bb.config.d_model} n_layer={bb.config.n_layer} "
        f"({bb.num_parameters() / 1e6:.2f}M parameters), "
        + (f"initialised from `{a.init}` (multi-omic MLM)" if a.init else "trained from scratch") + ".  ",
        (f"Pretraining state of the init: `{(Path(a.init) / 'trainer_state.json').read_text().strip()}`.  " if a.init and (Path(a.init) / "trainer_state.json").exists() else "")
        + f"Budget: {a.workers} worker processes x 1 thread; {a.train_rows} training rows drawn per epoch for the Transformer "
        f"(the CNN trains on {a.train_rows} rows); gradient boosting {a.gb_iters} iterations; "
        f"epochs: dG {a.epochs}, CNN {a.cnn_epochs}, ddG {a.ddg_epochs}, residues {a.residue_epochs}; "
        f"proteins cut to their first {a.max_protein_len} residues for the Transformer.\n",
        "## Data\n",
        f"ProNAB cleaning: {rep.summary()}.  ",
        f"Protein-disjoint folds: {len(uniq)} unique proteins, {clusters.max() + 1} clusters at >= {a.threshold:.0%} identity "
        f"(Smith-Waterman BLOSUM62 identical residues / shorter length, single linkage; {t_ident:.0f}s), "
        f"grouped 5-fold. Random split: {leak:.0%} of test rows have their protein cluster in training.\n",
    ]
    # Every job is independent; they run in a pool of forked workers (one torch thread each), so
    # the wall time is the CPU work divided by --workers. Longest jobs first.
    splits = {"protein-disjoint (clusters at 40% identity)": folds, "random rows (leaky)": random_folds}
    jobs = [("attribution",), ("residues",), ("ddg",)] if not a.quick else [("ddg",), ("residues",), ("attribution",)]
    jobs = [j for j in jobs if j[0] in parts]
    if "dg" in parts:
        jobs += [("dg", split, k) for k in range(a.folds) for split in splits]
    _G.update(ctx=ctx, recs=recs, folds=folds, splits=splits, shared=shared)
    if "dg" in parts:
        _G["X"] = np.stack([pair_kmer_features(r.protein, r.na, r.na2, r.na_type == "RNA") for r in recs])
        _G["seqs"] = encode_records(recs, a.max_protein_len)
        if a.protein_model:
            t0 = time.time()
            _G["XE"] = {}
            for kind in ("pretrained", "random"):
                E = dict(zip(uniq, protein_embeddings(a, uniq, random_weights=kind == "random"), strict=True))
                _G["XE"][kind] = np.concatenate([_G["X"], np.stack([E[r.protein] for r in recs])], 1)
            print(f"protein embeddings of {len(uniq)} ProNAB proteins: {time.time() - t0:.0f}s", flush=True)
    results: dict = {}
    if a.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("fork")) as pool:
            futs = {pool.submit(_run_job, j): j for j in jobs}
            for f in as_completed(futs):
                results[futs[f]] = f.result()
                print(f"done {futs[f]} at {time.time() - t_start:.0f}s", flush=True)
                if futs[f][0] != "dg":  # sections print as they finish, so a cut-short run still reports them
                    print("\n".join(results[futs[f]]), flush=True)
    else:
        for j in jobs:
            results[j] = _run_job(j)
            print(f"done {j} at {time.time() - t_start:.0f}s", flush=True)
    if "dg" in parts:
        dg_report(len(recs), {sp: [results[("dg", sp, k)] for k in range(a.folds)] for sp in splits}, report)
    for name in ("ddg", "residues", "attribution"):
        if (name,) in results:
            report.extend(results[(name,)])
    report.append(f"Total wall time {time.time() - t_start:.0f}s.\n")
    text = "\n".join(report) + "\n"
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".multiomic.", dir=out.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, out)
    print(text)


if __name__ == "__main__":
    main()
