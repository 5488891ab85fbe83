"""The KD-slope predictor (cch_jax.predict) against KD's observed effect on real data (issue 16).

Multiview (UCI multiple features), the protocol of experiments/multiview.py at a reduced size
(CONFIG below): per seed a stratified 50/50 split; MLP teachers on view v1 + Gaussian noise σ;
the no-KD MLP student on v2 (λ = 0, the σ = 0 run of v2, same key); KD students on the λ × T grid;
observed Δ = KD − no-KD test accuracy, grid mean, per seed. Two predictions per (v2, v1, σ, seed),
made from the no-KD student only:

  * probe: `predict_probe` on the no-KD student's hidden features H2 of the **test** rows, the
    test labels and the teacher's test logits (5-fold cross-fitting within the test rows; the
    probe never sees a KD student), temperature = each grid T (slopes and gains averaged over T);
    slope (negative: KD predicted to help) and the curve's gain at the grid λs (grid mean);
  * student: `student_slope` of the full no-KD MLP: its training loss on the training rows (with
    the teacher's training logits), held-out cross-entropy on the test rows; damped CG on the
    Gauss–Newton matrix (CONFIG["curvature"]): with the exact Hessian (curvature="hessian"), CG
    solved none of the 66 settings (relative residuals 0.12 to 125; a minibatch-trained MLP is
    not at a minimum and its Hessian is indefinite), so every full-student slope was left out.

Outputs results/predict_validation/{results.npz, results.json}; docs/results.md has the table.

    python -m experiments.predict_validation             # CONFIG
    python -m experiments.predict_validation --quick     # 3 views, 2 noise levels, 2 seeds
    python -m experiments.predict_validation --quick --out=DIR   # saved in DIR/predict_validation
    python -m experiments.predict_validation mnist_m     # needs results/medium/mnist_m
    python -m experiments.predict_validation multiview omics mnist_m --reuse=DIR1,DIR2
    python -m experiments.predict_validation --table [DIR]   # docs/results.md's table

Every setting of the experiments' own runs (`multiview_grid`, `omics_pairs`): Δ, CCH and the check
over all seeds of a finished `cch reproduce multiview` / `cch reproduce omics` run, the
predictions on its first CONFIG["grid_seeds"][experiment] seeds (their networks retrained here with
the run's keys; the largest Δ difference from the run's is saved as `reproduced_max_diff`):

    python -m experiments.predict_validation multiview_grid omics_pairs \
        --multiview-run=results/multiview --omics-run=results/omics
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cch_jax.models import make_model
from cch_jax.predict import cg_solved, predict_probe, student_slope, student_slopes
from cch_jax.train import ArrayData
from experiments._common import results_dir, save_results
from experiments._real import (
    check_arrays,
    check_features,
    check_setting,
    check_tallies,
    lam_temp_grid,
    make_runners,
    mean_sem,
    mi_label,
    mi_teacher_student,
    mlp_config,
    reduce_features,
    seed_keys,
    standardise,
    stratified_split,
)
from experiments.multiview import CONFIG as MULTIVIEW
from experiments.multiview import (
    _teacher_inputs,
    gaps_by_setting,
    held_out_features,
    mi_arrays,
    run_checks,
)

NAME = "predict_validation"
CONFIG = dict(
    views=("fac", "pix", "kar", "fou", "zer", "mor"),
    noise=(0.0, 4.0),
    seeds=3,
    lams=(0.3, 0.7),
    temperatures=(2.0,),
    hidden=64,
    steps=300,
    batch_size=128,
    learning_rate=3e-3,
    test_fraction=0.5,
    folds=3,
    bootstrap=1000,
    damping=1e-3,
    # The full student's curvature (cch_jax.predict.CURVATURES): "gauss-newton" (positive
    # semi-definite: damped CG converges) or "hessian" (indefinite here: CG never solved).
    curvature="gauss-newton",
    # CG iterations of the full student's solve. Gauss–Newton, float32, δ = 1e-3, relative
    # residuals measured on quick-run students: multiview fac and omics mirna (6.8k-14.5k
    # parameters) 0.07-0.1 after 50 iterations, 2e-5 to 4e-5 after 200; omics methylation and
    # fusion (26k-32k) 9e-3 to 1.3e-2 after 200, 6e-5 to 7e-5 after 500, float32's floor 4e-5
    # after 1000 or 2000 (in float64: 2e-5 to 7e-5 after 200, 1e-10 after 500). The slopes moved
    # by at most 2e-4 (relative) past 200 iterations.
    cg_iters=500,
    probe_steps=150,
    # multiview_grid / omics_pairs: the predictions on the first `grid_seeds` seeds of a finished
    # run (Δ, CCH and the check over all its seeds). A multiview seed costs 300 probes (150
    # settings × 2 T) of ~2 s each on the 2-core CPU; an omics seed 54 smaller ones.
    grid_seeds={"multiview": 3, "omics": 10},
    # mnist_m's probes (5000 rows × 64 features, 10 classes, float64) at T = 2 only: the run's
    # three temperatures would triple ~30 probes of about a minute each.
    mnist_m_temperatures=(2.0,),
    key=0,
    # CCH on the same settings with experiments/multiview.py's settings: both MI estimator pairs
    # per seed on PCA-reduced held-out features, and the bias-aware check (seed check_seed).
    **{k: MULTIVIEW[k] for k in ("pca_knn", "pca_gauss", "k", "check_seed", "pca_check")},
    check_families=MULTIVIEW["check_families"],
)
QUICK = dict(views=("fac", "fou", "mor"), noise=(0.0, 4.0), seeds=2, steps=150)


def run_multiview(cfg) -> dict:
    from cch_jax.data.real import load_multiview

    data = load_multiview()
    views, noise, S = tuple(cfg["views"]), tuple(cfg["noise"]), cfg["seeds"]
    V, N = len(views), len(noise)
    y = data["labels"]
    C = int(y.max()) + 1
    splits = [stratified_split(y, cfg["test_fraction"], s) for s in range(S)]
    y_tr = np.stack([y[tr] for tr, _ in splits])
    y_te = np.stack([y[te] for _, te in splits])
    k_train, k_mi = jax.random.split(jax.random.key(cfg["key"]))
    keys = seed_keys(k_train, S)  # as experiments/multiview.py: the same networks, seed by seed
    config = mlp_config(cfg, C)
    lams, temps = lam_temp_grid(cfg)
    G = lams.size

    X, runners, lg_tr, lg_te, params, feats_te, H, Hc = {}, {}, {}, {}, {}, {}, {}, {}
    for vi, v in enumerate(views):
        pairs = [standardise(data[v][tr], data[v][te]) for tr, te in splits]
        X[v] = (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
        x_tr, x_te = _teacher_inputs(*X[v], noise, vi, S)
        zeros = np.zeros((N * S, y_tr.shape[1], C), np.float32)
        d = ArrayData(x_tr, np.tile(y_tr, (N, 1)), zeros, x_te, np.tile(y_te, (N, 1)))
        runners[v] = make_runners(config, ArrayData(*(a[0] for a in d)), cfg["learning_rate"])
        single, _, feats, logits = runners[v]
        res = single(d, jnp.tile(keys, N))
        lg_tr[v] = np.asarray(logits(res.params, x_tr)).reshape(N, S, -1, C)
        lg_te[v] = np.asarray(logits(res.params, x_te)).reshape(N, S, -1, C)
        params[v] = jax.tree.map(lambda a: a[:S], res.params)  # σ = 0: the no-KD students
        feats_te[v] = np.asarray(feats(params[v], X[v][1]))  # (S, m, hidden)
        H[v], Hc[v] = held_out_features(
            np.asarray(feats(res.params, x_tr)), np.asarray(feats(res.params, x_te)), cfg, vi
        )

    settings = [(vj, vi, i) for vj in range(V) for vi in range(V) if vi != vj for i in range(N)]
    R = len(settings)
    delta = np.full((R, S), np.nan)  # observed Δacc, grid mean
    delta_grid = np.full((R, S, G), np.nan)
    probe_slope = np.full((R, S), np.nan)
    probe_ci = np.full((R, S, 2), np.nan)
    probe_cg = np.full((R, S), np.nan)  # the probe's largest CG residual
    probe_gain = np.full((R, S), np.nan)  # curve gain, mean over the grid (λ, T)
    student = np.full((R, S), np.nan)
    student_ci = np.full((R, S, 2), np.nan)
    diag = np.full((R, S, 2), np.nan)  # student CG residual, gradient norm
    model = make_model(config.model, **config.model_kwargs)
    row = {s: r for r, s in enumerate(settings)}
    for vj, v2 in enumerate(views):
        if cfg.get("student_views") and v2 not in cfg["student_views"]:
            continue  # another process's share (NaN here; `merge_parts` joins the shares)
        others = [vi for vi in range(V) if vi != vj]
        t = np.stack([lg_tr[views[vi]] for vi in others])  # (V-1, N, S, n, C)
        t = t.reshape(-1, S, *t.shape[3:]).transpose(1, 0, 2, 3)
        x_tr, x_te = X[v2]
        res = runners[v2][1](ArrayData(x_tr, y_tr, t, x_te, y_te), keys, lams, temps)
        kd = np.asarray(res.metrics.test[..., -1]).reshape(S, V - 1, N, G)
        base = np.asarray(
            runners[v2][0](
                ArrayData(x_tr, y_tr, np.zeros((S, x_tr.shape[1], C), np.float32), x_te, y_te),
                keys,
            ).metrics.test[:, -1]
        )  # (S,) the no-KD students' accuracy (the σ = 0 teacher runs of v2)
        for a, vi in enumerate(others):
            for i in range(N):
                r = row[(vj, vi, i)]
                delta_grid[r] = kd[:, a, i] - base[:, None]
                delta[r] = delta_grid[r].mean(-1)
        t0 = time.perf_counter()
        for s in range(S):
            p_s = jax.tree.map(lambda a, s=s: a[s], params[v2])
            # The full student's slopes for every (teacher, σ) of this student at once, per T.
            teachers = np.stack([lg_tr[views[vi]][i, s] for vi in others for i in range(N)])
            full = {
                T: iter(
                    student_slopes(
                        model,
                        p_s,
                        (x_tr[s], y_tr[s], teachers),
                        (x_te[s], y_te[s]),
                        **_slope_options(cfg, T, s),
                    )
                )
                for T in cfg["temperatures"]
            }
            for vi in others:
                for i in range(N):
                    r = row[(vj, vi, i)]
                    slopes, cis, gains, cgs, st, sci, dg = [], [], [], [], [], [], []
                    for T in cfg["temperatures"]:
                        pr = _prediction(
                            feats_te[v2][s], y_te[s], lg_te[views[vi]][i, s], T, cfg["lams"], cfg, s
                        )
                        slopes.append(pr.slope.slope)
                        cis.append(pr.slope.ci)
                        cgs.append(pr.slope.cg_residual)
                        gains.append(pr.curve.gain[1:].mean())
                        ss = next(full[T])
                        st.append(ss.slope)
                        sci.append(ss.ci)
                        dg.append((ss.cg_residual, ss.grad_norm))
                    probe_slope[r, s], probe_ci[r, s] = np.mean(slopes), np.mean(cis, 0)
                    probe_gain[r, s] = np.mean(gains)
                    probe_cg[r, s] = np.max(cgs)
                    student[r, s], student_ci[r, s] = np.mean(st), np.mean(sci, 0)
                    diag[r, s] = np.max(dg, 0)
        print(
            f"[{NAME}] KD into {v2}: mean Δacc {100 * delta[[row[(vj, vi, i)] for vi in others for i in range(N)]].mean():+.2f} pts; "
            f"predictions {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    cch = {}
    if cfg.get("cch", True):  # False: the caller takes CCH and the check from a finished run
        t0 = time.perf_counter()
        i2y, i12 = mi_arrays(H, lg_te, y_te, cfg, k_mi)
        gaps = gaps_by_setting(i2y, i12, settings)
        cch = {f"gap_{name}": g for name, g in gaps.items()}
        cch |= run_checks(Hc, y_te[cfg["check_seed"]], cfg)
        print(f"[{NAME}] CCH and check: {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "settings": np.array(settings),
        **cch,
        "probe_cg": probe_cg,
        "delta": delta,
        "delta_grid": delta_grid,
        "probe_slope": probe_slope,
        "probe_ci": probe_ci,
        "probe_gain": probe_gain,
        "student_slope": student,
        "student_ci": student_ci,
        "student_diag": diag,
        "student_cg": diag[..., 0],
    }


OMICS = dict(
    cohorts=("brca", "kipan"),
    students=("mirna", "methylation", "fusion"),
    seeds=4,
    lams=(0.3, 0.7),
    temperatures=(2.0,),
    hidden=64,
    steps=300,
    batch_size=128,
    learning_rate=3e-3,
    test_fraction=0.3,
)


def _slope_options(pcfg, temperature, seed) -> dict:
    """`student_slope(s)`'s options in the validations: a classifier at temperature T."""
    return dict(
        task="classification",
        temperature=temperature,
        damping=pcfg["damping"],
        maxiter=pcfg["cg_iters"],
        curvature=pcfg["curvature"],
        bootstrap=pcfg["bootstrap"],
        seed=seed,
    )


def _prediction(h, y, t, temperature, lams, pcfg, seed):
    """`predict_probe` of one no-KD student's features h with the validations' options."""
    return predict_probe(
        h,
        y,
        t,
        temperature=temperature,
        lams=lams,
        folds=pcfg["folds"],
        bootstrap=pcfg["bootstrap"],
        steps=pcfg["probe_steps"],
        seed=seed,
    )


def _probe(h, y, t, temperature, lams, pcfg, seed) -> tuple[float, float, float]:
    """(probe slope, probe-KD curve gain averaged over `lams`, CG residual) of one no-KD
    student."""
    pr = _prediction(h, y, t, temperature, lams, pcfg, seed)
    return pr.slope.slope, float(pr.curve.gain[1:].mean()), pr.slope.cg_residual


def run_omics(cfg, pcfg) -> dict:
    """experiments/omics.py's protocol (mRNA teacher → miRNA / methylation / fusion), reduced to
    OMICS; per (cohort, student, seed) the predictions of `run_multiview`: CCH by both estimator
    pairs (PCA, MI settings of pcfg, 2 kNN subsets as in omics.py), the bias-aware check (seed
    pcfg["check_seed"]; ~230 held-out rows: outside its validated range), the probe and the
    student slope."""
    from cch_jax.data.real import load_omics
    from experiments.omics import FUSION, TEACHER

    names = ("delta", "probe_slope", "probe_gain", "probe_cg", "student_slope", "student_cg")
    out = {k: [] for k in (*names, "gap_knn", "gap_gauss_ba")}
    checks = []
    for c, cohort in enumerate(cfg["cohorts"]):
        data = load_omics(cohort, version="compact")
        y = data["labels"]
        C, S = int(y.max()) + 1, cfg["seeds"]
        splits = [stratified_split(y, cfg["test_fraction"], s) for s in range(S)]
        y_tr = np.stack([y[tr] for tr, _ in splits])
        y_te = np.stack([y[te] for _, te in splits])
        k_train, k_mi = jax.random.split(jax.random.key(cfg.get("key", 0) * 1000 + c))
        keys = jax.random.split(k_train, S)
        config = mlp_config(cfg, C)

        def inputs(view, data=data, splits=splits):
            views = FUSION if view == "fusion" else (view,)
            tr, te = [], []
            for itr, ite in splits:
                parts = [standardise(data[v][itr], data[v][ite]) for v in views]
                tr.append(np.concatenate([p[0] for p in parts], 1))
                te.append(np.concatenate([p[1] for p in parts], 1))
            return np.stack(tr), np.stack(te)

        x_tr, x_te = inputs(TEACHER)
        zeros = np.zeros((*y_tr.shape, C), np.float32)
        d = ArrayData(x_tr, y_tr, zeros, x_te, y_te)
        single, _, feats, logits = make_runners(
            config, ArrayData(*(a[0] for a in d)), cfg["learning_rate"]
        )
        teacher = single(d, keys)
        t_tr = np.asarray(logits(teacher.params, x_tr))
        t_te = np.asarray(logits(teacher.params, x_te))
        h1 = np.asarray(feats(teacher.params, x_tr)), np.asarray(feats(teacher.params, x_te))
        g_l, g_t = lam_temp_grid(cfg)
        lams = np.concatenate([[0.0], g_l]).astype(np.float32)
        temps = np.concatenate([[1.0], g_t]).astype(np.float32)
        model = make_model(config.model, **config.model_kwargs)
        s0 = pcfg["check_seed"]
        for j, view in enumerate(cfg["students"]):
            x_tr, x_te = inputs(view)
            template = ArrayData(x_tr[0], y_tr[0], t_tr[0], x_te[0], y_te[0])
            _, kd, feats, logits = make_runners(config, template, cfg["learning_rate"])
            res = kd(ArrayData(x_tr, y_tr, t_tr[:, None], x_te, y_te), keys, lams, temps)
            acc = np.asarray(res.metrics.test[:, 0, :, -1])  # (S, G)
            out["delta"].append((acc[:, 1:] - acc[:, :1]).mean(1))
            base = jax.tree.map(lambda a: a[:, 0, 0], res.params)  # λ = 0 students (S, ...)
            h2 = np.asarray(feats(base, x_tr)), np.asarray(feats(base, x_te))
            s_te = np.asarray(logits(base, x_te))
            row = {k: [] for k in out}
            for s in range(S):
                p_s = jax.tree.map(lambda a, s=s: a[s], base)
                r1 = reduce_features(h1[0][s], h1[1][s], pcfg, seed=(c, 0, s))
                r2 = reduce_features(h2[0][s], h2[1][s], pcfg, seed=(c, j + 1, s))
                kw = dict(key=jax.random.fold_in(k_mi, j * S + s), k=pcfg["k"], subsets=2)
                i2y = mi_label(r2, y_te[s], s_te[s], **kw)
                i12 = mi_teacher_student(r1, r2, **kw)
                for pair in ("knn", "gauss_ba"):
                    row[f"gap_{pair}"].append(i12[pair][0] - i2y[pair][0])
                per_t = []  # per T: probe slope, gain, CG residual; student slope, CG residual
                for T in cfg["temperatures"]:
                    st = student_slope(
                        model,
                        p_s,
                        (x_tr[s], y_tr[s], t_tr[s]),
                        (x_te[s], y_te[s]),
                        **_slope_options(pcfg, T, s),
                    )
                    probe = _probe(h2[1][s], y_te[s], t_te[s], T, cfg["lams"], pcfg, s)
                    per_t.append((*probe, st.slope, st.cg_residual))
                over_t = (np.mean, np.mean, np.max, np.mean, np.max)  # residuals: the worst
                for k, f, col in zip(names[1:], over_t, np.array(per_t).T, strict=True):
                    row[k].append(f(col))
            for k in names[1:] + ("gap_knn", "gap_gauss_ba"):
                out[k].append(row[k])
            hc1 = check_features(h1[0][s0], h1[1][s0], pcfg, seed=(c, 0, s0, 7))
            hc2 = check_features(h2[0][s0], h2[1][s0], pcfg, seed=(c, j + 1, s0, 7))
            checks.append(check_setting(hc1, hc2, y_te[s0], pcfg, seed=c * 100 + j))
            print(
                f"[{NAME}] omics {cohort} {TEACHER} → {view}: Δacc "
                f"{100 * out['delta'][-1].mean():+.2f} pts, probe slope "
                f"{np.mean(row['probe_slope']):+.4f}, student slope "
                f"{np.mean(row['student_slope']):+.4f}, gaps knn {np.mean(row['gap_knn']):+.3f} "
                f"gauss_ba {np.mean(row['gap_gauss_ba']):+.3f}",
                flush=True,
            )
    return {k: np.asarray(v) for k, v in out.items()} | check_arrays(checks)


# The training protocol of a finished experiment run that the grid validations take over.
GRID_KEYS = {
    "multiview": (
        "views",
        "noise",
        "lams",
        "temperatures",
        "hidden",
        "steps",
        "batch_size",
        "learning_rate",
        "test_fraction",
        "key",
    ),
}
PREDICTIONS = ("probe_slope", "probe_gain", "probe_cg", "student_slope", "student_cg")


def _reproduced(name, delta_run, delta_here) -> float:
    """Largest |Δ| difference between the finished run's first seeds and this run's networks."""
    diff = float(np.nanmax(np.abs(delta_here - delta_run[:, : delta_here.shape[1]])))
    print(f"[{NAME}] {name}: Δ of the retrained seeds vs the finished run: max |diff| {diff:.2g}")
    return diff


def run_multiview_grid(pcfg, run_dir) -> dict:
    """Every setting of a finished `multiview` run (experiments/multiview.py: its config, e.g.
    150 settings × 20 seeds × the 6-point λ × T grid): Δ, CCH and the check from that run; the
    predictions from its first pcfg["grid_seeds"]["multiview"] seeds, whose networks
    `run_multiview` retrains with the run's keys (the same networks: `reproduced_max_diff` is the largest difference of
    their Δ from the run's), at every T of the run's grid, the probe curve at its λs."""
    from experiments import multiview as mv
    from experiments._common import load_results

    arrays, meta = load_results(run_dir)
    run_cfg = meta["config"]
    keys = GRID_KEYS["multiview"]
    seeds = pcfg["grid_seeds"]["multiview"]
    cfg = {**pcfg, **{k: run_cfg[k] for k in keys}, "seeds": seeds, "cch": False}
    here = run_multiview(cfg)
    _, gaps, delta = mv.settings(arrays, run_cfg)
    if cfg.get("student_views"):  # this process's share: Δ only where it retrained
        delta = np.where(np.isnan(here["delta"][:, :1]), np.nan, delta)
    return {k: here[k] for k in (*PREDICTIONS, "settings")} | {
        "delta": delta,
        "delta_retrained": here["delta"],
        "reproduced_max_diff": np.array(_reproduced("multiview", delta, here["delta"])),
        **{f"gap_{name}": g for name, g in gaps.items()},
        **{k: v for k, v in arrays.items() if k.startswith("check_")},
    }


def _omics_predict(config, params, train, test, h2_te, *, pcfg, lams, temps) -> dict:
    """`experiments.omics.run_cohort`'s hook: per seed and teacher of a student input, the probe
    (on the no-KD student's test features) and the full student's slope (all its teachers in one
    batched solve), each T of `temps`, averaged over T (CG residuals: the worst)."""
    (x_tr, y_tr, t_tr), (x_te, y_te, t_te) = train, test
    model = make_model(config.model, **config.model_kwargs)
    S, P = t_tr.shape[:2]
    out = np.zeros((len(PREDICTIONS), P, S))
    for s in range(S):
        p_s = jax.tree.map(lambda a, s=s: a[s], params)
        per_t = []
        for T in temps:
            full = student_slopes(
                model,
                p_s,
                (x_tr[s], y_tr[s], t_tr[s]),
                (x_te[s], y_te[s]),
                **_slope_options(pcfg, T, s),
            )
            per_t.append(
                [
                    (
                        *_probe(h2_te[s], y_te[s], t_te[s, p], T, lams, pcfg, s),
                        st.slope,
                        st.cg_residual,
                    )
                    for p, st in enumerate(full)
                ]
            )
        a = np.array(per_t)  # (T, P, 5)
        for i, f in enumerate((np.mean, np.mean, np.max, np.mean, np.max)):
            out[i, :, s] = f(a[..., i], axis=0)
    return dict(zip(PREDICTIONS, out, strict=True))


def run_omics_pairs(pcfg, run_dir) -> dict:
    """Every setting of a finished `omics` run (experiments/omics.py: every ordered view pair and
    fusion student of BRCA, KIPAN, PAAD, 30 seeds, its λ × T grid): Δacc, CCH and the check from
    that run; the predictions (`_omics_predict`) from its first pcfg["grid_seeds"]["omics"]
    seeds, whose networks `omics.run_cohort` retrains with the run's keys (checked as in
    `run_multiview_grid`)."""
    import functools

    from cch_jax.data.omics import COHORTS
    from cch_jax.data.real import load_omics
    from experiments import omics as om
    from experiments._common import load_results

    arrays, meta = load_results(run_dir)
    run_cfg = meta["config"]
    cfg = {**run_cfg, "seeds": pcfg["grid_seeds"]["omics"]}
    hook = functools.partial(
        _omics_predict, pcfg=pcfg, lams=run_cfg["lams"], temps=run_cfg["temperatures"]
    )
    here = {}
    for cohort in cfg["cohorts"]:
        data = load_omics(cohort, version=cfg["versions"][cohort])
        key = jax.random.key(cfg["key"] * 1000 + COHORTS.index(cohort))
        r = om.run_cohort(cohort, cfg, key, data, predict=hook)
        here |= {f"{cohort}/{k}": v for k, v in r.items()}
    _, gaps, deltas = om.settings(arrays, run_cfg)
    _, _, retrained = om.settings(here, cfg)
    out = {
        k: np.concatenate([here[f"{c}/predict_{k}"] for c in cfg["cohorts"]]) for k in PREDICTIONS
    }
    return out | {
        "delta": deltas["acc"],
        "delta_retrained": retrained["acc"],
        "reproduced_max_diff": np.array(_reproduced("omics", deltas["acc"], retrained["acc"])),
        **{f"gap_{name}": g for name, g in gaps.items()},
        **om.stacked_checks(arrays, run_cfg),
    }


def binomial_ci(k: int, n: int) -> list:
    """Clopper–Pearson 95 % interval of a proportion k/n."""
    from scipy.stats import binomtest

    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def agreement(pred_helps, pred_sem_ok, delta, valid=None) -> dict:
    """Sign agreement of a prediction (per setting: mean over seeds) with the observed Δ.

    pred_helps (R,) bool; pred_sem_ok (R,) bool: the prediction's mean is beyond 2 SEM over seeds;
    delta (R, S) observed; valid (R,) bool: settings with a prediction (default all; the others
    are left out of every count). Overall, among settings where Δ is beyond 2 SEM, and among those
    where both are."""
    d, ds = mean_sem(delta)
    helps, sig = d > 0, np.abs(d) > 2 * ds
    valid = np.ones_like(sig) if valid is None else np.asarray(valid, bool)
    agree = pred_helps == helps
    out = {}
    for name, sel in (
        ("all", valid),
        ("delta_beyond_2sem", valid & sig),
        ("both_beyond_2sem", valid & sig & pred_sem_ok),
    ):
        k, n = int(np.sum(agree & sel)), int(np.sum(sel))
        out[name] = {
            "agree": k,
            "settings": n,
            "rate": k / n if n else None,
            "ci95": binomial_ci(k, n),
        }
    return out


def run_mnist_m(directory, pcfg, temperatures=None) -> dict:
    """The probe prediction on a finished `mnist_m` run of the jobs runner (`--medium`), from the
    outputs it saved: per (σ, seed), the no-KD student's features H2 and the teacher's logits on
    the first n_fit **training** images (the only rows where both were saved; a 600-step student
    has seen each image at most about once), the training labels, temperature = each grid T.
    The student slope needs the networks' parameters, which the runner does not keep: NaN.
    temperatures: the probe's T (default: the run's grid)."""
    from cch_jax.data.real import load_mnist_pair
    from experiments._common import load_results

    arrays, meta = load_results(directory)
    cfg = meta["config"]
    jobs = Path(directory) / "jobs"
    n_fit, S = cfg["n_fit"], cfg["seeds"]
    _, _, y = load_mnist_pair("train", limit=n_fit)
    delta = arrays["kd_acc"].mean(-1) - arrays["student_acc"][None, :]  # (σ, S)
    out = {"delta": delta, "probe_slope": [], "probe_gain": [], "probe_cg": []}
    for i, sigma in enumerate(cfg["sigmas"]):
        rows = []
        for s in range(S):
            with np.load(jobs / f"student_s{s}.npz") as z:
                h2 = z["h_fit"]
            with np.load(jobs / f"teacher_{i}_s{s}.npz") as z:
                t = z["logits"][:n_fit]
            m = np.array(
                [
                    _probe(h2, y, t, T, cfg["lams"], pcfg, s)
                    for T in temperatures or cfg["temperatures"]
                ]
            )  # (T, 3): slope, gain, CG residual
            rows.append((m[:, 0].mean(), m[:, 1].mean(), m[:, 2].max()))
        for k, v in zip(("probe_slope", "probe_gain", "probe_cg"), np.array(rows).T, strict=True):
            out[k].append(v)
        print(
            f"[{NAME}] mnist_m σ = {sigma:g}: Δacc {100 * delta[i].mean():+.2f} pts, "
            f"probe slope {np.mean(out['probe_slope'][-1]):+.4f}",
            flush=True,
        )
    out = {k: np.asarray(v) for k, v in out.items()}
    out["student_slope"] = np.full_like(out["probe_slope"], np.nan)
    # CCH from the run itself: i2y (pair, seed, value/se), i12 (pair, σ, seed, value/se).
    for p, name in enumerate(("knn", "gauss_ba")):
        out[f"gap_{name}"] = arrays["i12"][p, ..., 0] - arrays["i2y"][p, None, :, 0]
    return out | {k: v for k, v in arrays.items() if k.startswith("check_")}


# Per-seed predictions of the gain's sign (> 0: KD predicted to help), (R, S), and the CG
# residual array (R, S) that decides whether a slope is usable (None: no solve involved).
PREDICTORS = {
    "cch_knn": ("gap_knn", None),  # CCH: gap I(H1;H2) − I(H2;Y) > 0 predicts "helps"
    "cch_gauss_ba": ("gap_gauss_ba", None),
    "probe_slope": ("probe_slope", "probe_cg"),  # −slope
    "probe_curve_gain": ("probe_gain", None),
    "student_slope": ("student_slope", "student_cg"),  # −slope
}


def summarise(arrays) -> dict:
    """Per predictor: sign agreement with Δ (agreement), Spearman ρ of the seed means, how many
    settings it says "helps" for, and (slopes) how many it cannot speak for: a setting's slope is
    used only when CG solved (P1) for every seed (residual ≤ CG_RESIDUAL_MAX; see
    cch_jax.predict). The bias-aware check's verdicts: check_tally per variant."""
    from scipy.stats import spearmanr

    delta = arrays["delta"]
    dm, _ = mean_sem(delta)
    out = {}
    for name, (key, cg) in PREDICTORS.items():
        if key not in arrays or np.all(np.isnan(arrays[key])):
            continue  # not computed for this experiment (mnist_m: no student slope)
        p = -arrays[key] if key.endswith("slope") else arrays[key]
        pm, ps = mean_sem(p)
        valid = np.isfinite(pm)
        if cg is not None and cg in arrays:
            # every seed with a slope solved (P1); NaN seeds (padding in `pooled`) have none
            valid &= np.all(cg_solved(arrays[cg]) | np.isnan(arrays[key]), axis=1)
        r = spearmanr(pm[valid], dm[valid]) if valid.sum() > 2 else None
        out[name] = {
            **agreement(pm > 0, np.abs(pm) > 2 * ps, delta, valid),
            "spearman": [float(r.statistic), float(r.pvalue)] if r else None,
            "predicts_helps": int(np.sum(valid & (pm > 0))),
            "no_prediction": int(np.sum(~valid)),
        }
    # The baselines a predictor must beat: one sign everywhere, always certain. Their agreement is
    # the share of settings where KD helped (hurt), overall and among those beyond 2 SEM.
    always = np.ones(dm.shape, bool)
    for name, helps in (("always_helps", always), ("always_hurts", ~always)):
        out[name] = {
            **agreement(helps, always, delta),
            "spearman": None,
            "predicts_helps": int(helps.sum()),
            "no_prediction": 0,
        }
    if "check_pca_verdict" in arrays:
        out["check"] = check_tallies(arrays, delta)
    out["observed_helps"] = int(np.sum(dm > 0))
    out["settings"] = int(dm.size)
    return out


SEEDED = ("delta", *(k for pair in PREDICTORS.values() for k in pair if k))  # (R, S) arrays


# A grid validation covers every setting of the reduced one it is named after: pooled with it,
# the reduced one is left out.
SUPERSEDES = {"multiview_grid": "multiview", "omics_pairs": "omics"}


def pooled(parts: dict) -> dict:
    """The arrays of several experiments ({name: arrays}, less those SUPERSEDES names) stacked
    along the settings axis: the per-seed ones (SEEDED; NaN-padded to the largest seed count:
    means and SEMs ignore NaN) and the check's per-setting ones, where all have them."""
    parts = [a for e, a in parts.items() if e not in {SUPERSEDES.get(o) for o in parts}]
    keys = set.intersection(*(set(p) for p in parts))

    def get(p, k, S):
        """p[k] (R, S') padded to S seeds; all NaN where p lacks k (mnist_m: no student slope,
        no student CG): no prediction."""
        out = np.full((len(p["delta"]), S), np.nan)
        if k in p:
            out[:, : p[k].shape[1]] = p[k]
        return out

    out = {}
    for k in SEEDED:
        if any(k in p for p in parts):
            S = max(p[k].shape[1] for p in parts if k in p)
            out[k] = np.concatenate([get(p, k, S) for p in parts])
    out |= {k: np.concatenate([p[k] for p in parts]) for k in keys if k.startswith("check_")}
    return out


def merge_parts(a: dict, b: dict) -> dict:
    """One experiment's arrays from two shares of its settings (multiview_grid run with disjoint
    `student_views`): b's values where a's are NaN (float arrays), the larger
    `reproduced_max_diff`, a's for the rest (the same in both)."""
    out = {}
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if k == "reproduced_max_diff":
            out[k] = np.nanmax([x, y])
        elif x.dtype.kind == "f" and x.shape == y.shape:
            out[k] = np.where(np.isnan(x), y, x)
        else:
            out[k] = x
    return out


def summaries(parts: dict) -> dict:
    """{experiment: summarise(arrays)} and, for several, "pooled" (see `pooled`)."""
    out = {name: summarise(arrays) for name, arrays in parts.items()}
    if len(parts) > 1:
        out["pooled"] = summarise(pooled(parts))
    return out


def load_parts(directory) -> dict:
    """{experiment: arrays} of a finished (or partial) run saved by `main`."""
    from experiments._common import load_results

    arrays, _ = load_results(directory)
    parts = {}
    for key, value in arrays.items():
        e, k = key.split("/", 1)
        parts.setdefault(e, {})[k] = value
    return parts


def main(
    *,
    quick: bool = False,
    out=None,
    experiments=("multiview", "omics"),
    mnist_m_dir=None,
    run_dirs=None,
    reuse=(),
    **overrides,
) -> dict:
    """Run the chosen experiments (those found in the `reuse` folders are loaded instead), and
    save results.{npz,json} after each one, so an interruption keeps what finished. run_dirs:
    {"multiview": DIR, "omics": DIR}, the finished runs that multiview_grid and omics_pairs
    validate against (default results/multiview, results/omics)."""
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    start = time.perf_counter()
    done = {}
    for directory in reuse:
        for name, arrays in load_parts(directory).items():
            done[name] = merge_parts(done[name], arrays) if name in done else arrays
    runs = {
        "multiview": lambda: run_multiview(cfg),
        "omics": lambda: run_omics(omics_cfg, cfg),
        "mnist_m": lambda: run_mnist_m(
            mnist_m_dir or "results/medium/mnist_m", cfg, cfg["mnist_m_temperatures"]
        ),
        "multiview_grid": lambda: run_multiview_grid(cfg, runs_dir["multiview"]),
        "omics_pairs": lambda: run_omics_pairs(cfg, runs_dir["omics"]),
    }
    runs_dir = {"multiview": "results/multiview", "omics": "results/omics", **(run_dirs or {})}
    omics_cfg = {**OMICS, **({"cohorts": ("brca",), "seeds": 2, "steps": 150} if quick else {})}
    directory = results_dir(NAME, out, quick)
    results = {}
    for name in experiments:
        results[name] = done[name] if name in done else runs[name]()
        summary = summaries(results)
        summary["seconds"] = time.perf_counter() - start
        flat = {f"{e}/{k}": v for e, arrays in results.items() for k, v in arrays.items()}
        meta = {"config": cfg, "omics_config": omics_cfg, "reused": [str(d) for d in reuse]}
        save_results(directory, flat, meta | summary)
    import json

    print(json.dumps(summary, indent=1))
    return summary


EXPERIMENTS = ("multiview", "multiview_grid", "omics", "omics_pairs", "mnist_m")
LABELS = {
    "cch_knn": "CCH, knn pair (KSG, mixed)",
    "cch_gauss_ba": "CCH, gauss_ba pair (Gaussian, BA)",
    "probe_slope": "probe slope",
    "probe_curve_gain": "probe-KD curve gain",
    "student_slope": "full-student slope",
    "always_helps": 'baseline: "helps" everywhere',
    "always_hurts": 'baseline: "hurts" everywhere',
}


def _rate(a: dict) -> str:
    if not a["settings"]:
        return "–"
    lo, hi = a["ci95"]
    return (
        f"{a['agree']}/{a['settings']} = {100 * a['rate']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]"
    )


def table(summary: dict) -> str:
    """The agreement table of docs/results.md (markdown) from a results.json summary: one row per
    (predictor, experiment), then the check's decisive verdicts."""
    lines = [
        '| predictor | data (settings) | no prediction | predicts "helps" | agree, all | '
        "agree, Δ beyond 2 SEM | agree, both beyond 2 SEM | Spearman ρ (p) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    parts = [e for e in (*EXPERIMENTS, "pooled") if e in summary]
    for name, label in LABELS.items():
        for e in parts:
            r = summary[e].get(name)
            if r is None:
                continue
            rho = "–" if r["spearman"] is None else "{:+.2f} ({:.2g})".format(*r["spearman"])
            lines.append(
                f"| {label} | {e} ({summary[e]['settings']}) | {r['no_prediction']} | "
                f"{r['predicts_helps']} | {_rate(r['all'])} | {_rate(r['delta_beyond_2sem'])} | "
                f"{_rate(r['both_beyond_2sem'])} | {rho} |"
            )
    for e in parts:
        for v in ("pca", "full"):
            t = summary[e].get("check", {}).get(v)
            if t is None:
                continue
            ci = t["agree_ci95"]
            agree = f"{t['agree']}/{t['decisive']}" + (
                f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else ""
            )
            lines.append(
                f"| `cch check` ({v}) | {e} ({t['settings']}) | {t['inconclusive']} "
                f"inconclusive | {t['holds']} holds | {agree} | "
                f"{t['agree_significant']}/{t['decisive_significant']} | – | – |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python -m experiments.predict_validation [--quick] [multiview] [omics] [mnist_m]
    # python -m experiments.predict_validation --table [DIR]   (markdown from a finished run)
    args = sys.argv[1:]
    if "--table" in args:
        rest = [a for a in args if not a.startswith("--")]
        # the summaries recomputed from the saved arrays (the table's rows may postdate the run)
        print(
            table(summaries(load_parts(rest[0] if rest else results_dir(NAME, None, False)))),
            end="",
        )
    else:
        # --reuse DIR[,DIR]: load the experiments a run in DIR finished instead of re-running them
        reuse = next((a.split("=", 1)[1].split(",") for a in args if a.startswith("--reuse=")), ())
        # --out=DIR: save to DIR/predict_validation instead of ./results/[quick/]predict_validation
        out = next((a.split("=", 1)[1] for a in args if a.startswith("--out=")), None)
        # --multiview-run=DIR / --omics-run=DIR: the finished runs of multiview_grid / omics_pairs
        run_dirs = {
            e: a.split("=", 1)[1]
            for e in ("multiview", "omics")
            for a in args
            if a.startswith(f"--{e}-run=")
        }
        # --student-views=v1,v2: multiview_grid on these student views only (shares for parallel
        # processes, joined by --reuse=DIR1,DIR2)
        shares = [a.split("=", 1)[1].split(",") for a in args if a.startswith("--student-views=")]
        overrides = {"student_views": tuple(shares[0])} if shares else {}
        chosen = tuple(a for a in args if not a.startswith("--")) or ("multiview", "omics")
        unknown = set(chosen) - set(EXPERIMENTS)
        if unknown:
            sys.exit(f"unknown experiment(s) {sorted(unknown)}: choose from {EXPERIMENTS}")
        main(
            quick="--quick" in args,
            out=out,
            experiments=chosen,
            reuse=reuse,
            run_dirs=run_dirs,
            **overrides,
        )
