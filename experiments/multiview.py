"""CCH on UCI multiple features (our reconstruction; the paper does not use this data set).

The 2000 handwritten digits of UCI "multiple features" are described by six views (fac, pix, kar,
fou, zer, mor; docs/data.md). Every ordered pair (teacher view v1 → student view v2, v1 ≠ v2) is a
cross-modal KD problem with paired samples. To carry the teacher across the CCH boundary we inject
Gaussian noise of std σ (in units of the standardised features) into the teacher's view, in its
training and test inputs alike, at several levels σ.

Per seed s (seeds = different stratified train/test splits and initialisations):
  * views standardised on the training split;
  * teacher: MLP (one hidden ReLU layer) on v1 + noise, cross-entropy only;
  * student without KD: the same MLP on v2, λ = 0 — with the same key as the teacher runs, the
    no-KD student of view v is exactly the σ = 0 teacher of view v (one training run serves both);
  * KD students: the same MLP and key, loss (1 − λ)·CE(y, s) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T))
    over the λ × T grid, teacher logits on the training inputs; everything vmapped under one jit
    per student view (seeds × teachers × grid);
  * Δaccuracy = KD − no-KD test accuracy on the same split, averaged over the λ × T grid.

MI gap on held-out data: H = the hidden layer (penultimate features) on the test split. H1 = the
teacher's, H2 = the no-KD student's. Each is reduced by PCA fitted on the training-split features
(to `pca_knn` dims for the kNN estimators, `pca_gauss` dims for the Gaussian one, since kNN MI in
high dimension is unreliable), plus a 1e-6·sd jitter that breaks exact ties (dead-ReLU rows).
Two estimator pairs:
    knn:      I(H1;H2) by KSG (PCA pca_knn)        − I(H2;Y) by the mixed (Ross) estimator (PCA pca_knn)
    gauss_ba: I(H1;H2) Gaussian (PCA pca_gauss)    − I(H2;Y) by the Barber–Agakov lower bound
              H(Y) − CE of the student's own softmax head on the test split
(The Gaussian estimator with one-hot labels is not used for I(H2;Y): it is not bounded by H(Y).)
CCH predicts "KD helps" when the gap (mean over seeds) is positive. All MIs in nats.

The bias-aware check (cch_jax.mi.check.check_cch, issue 11) runs per setting on the held-out
features of seed `check_seed`, with class labels, in two variants: "full" (every hidden unit that
varies on the test rows) and "pca" (PCA to `pca_check` dims fitted on training-split features).
Saved per setting: verdict, gap, gap_ci, validated, validated_reason (results.json rows
check_full / check_pca; arrays check_<variant>_<field>), and `check_tallies`: its verdicts
against the sign of Δ (decisive settings, agreement with a binomial 95 % interval, and among
settings whose Δ is beyond 2 SEM). omics and mnist_m do the same.

The helpers (splits, standardisation, PCA, MI, verdict tallies, MLP runners) live in
experiments/_real.py, shared with experiments/omics.py and experiments/mnist_m.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
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
    PCA,
    check_arrays,
    check_features,
    check_row,
    check_setting,
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

NAME = "multiview"
CONFIG = dict(
    views=("fac", "pix", "kar", "fou", "zer", "mor"),
    noise=(0.0, 1.0, 2.0, 4.0, 8.0),
    seeds=20,  # until 2026-12-02: 5 (docs/results.md keeps those numbers beside these)
    lams=(0.3, 0.5, 0.7),
    temperatures=(2.0, 4.0),
    hidden=64,
    steps=300,
    batch_size=128,
    learning_rate=3e-3,
    test_fraction=0.5,
    pca_knn=4,
    pca_gauss=8,
    k=3,
    key=0,
    # The bias-aware check (cch_jax.mi.check) on the held-out features of seed `check_seed`: all
    # hidden units ("full") and PCA to `pca_check` dims ("pca"). On the full 64 + 64 units only the
    # gc family runs: n = 1000 test rows is below 10 × 128 (outside the validated range whatever
    # the families), and the knn family there costs ~10 s a setting under load (150 settings).
    check_seed=0,
    pca_check=8,
    check_families={"full": ("gc",), "pca": ("gc", "knn")},
    compiler_options=None,  # XLA options of the training programs (_real.COMPILE_FAST)
)
QUICK = dict(
    views=("fac", "fou", "mor"),
    noise=(0.0, 0.5, 1.0, 4.0),
    seeds=3,
    lams=(0.5,),
    temperatures=(2.0,),
    steps=200,
)


def _teacher_inputs(x_tr, x_te, noise, view_index, seeds):
    """(N·S, n, d), (N·S, m, d): standardised view + σ·ε, run r = noise index · S + seed."""
    tr, te = [], []
    for i, sigma in enumerate(noise):
        for s in range(seeds):
            rng = np.random.default_rng([s, view_index, i, 11])
            tr.append(x_tr[s] + sigma * rng.standard_normal(x_tr[s].shape, np.float32))
            te.append(x_te[s] + sigma * rng.standard_normal(x_te[s].shape, np.float32))
    return np.stack(tr), np.stack(te)


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    from cch_jax.data.real import load_multiview

    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    data = load_multiview()
    views, noise, S = tuple(cfg["views"]), tuple(cfg["noise"]), cfg["seeds"]
    V, N = len(views), len(noise)
    y = data["labels"]
    C = int(y.max()) + 1
    splits = [stratified_split(y, cfg["test_fraction"], s) for s in range(S)]
    y_tr = np.stack([y[tr] for tr, _ in splits])
    y_te = np.stack([y[te] for _, te in splits])
    key = jax.random.key(cfg["key"])
    k_train, k_mi = jax.random.split(key)
    keys = seed_keys(k_train, S)  # one key per seed: teachers, baseline and KD students
    config = mlp_config(cfg, C)
    lams, temps = lam_temp_grid(cfg)
    G = lams.size

    # 1. Per view: teachers at every noise level (σ = 0 doubles as the no-KD student).
    X, runners, logits_tr, logits_te, H, Hc = {}, {}, {}, {}, {}, {}
    teacher_acc = np.zeros((V, N, S))
    for vi, v in enumerate(views):
        pairs = [standardise(data[v][tr], data[v][te]) for tr, te in splits]
        X[v] = (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
        x_tr, x_te = _teacher_inputs(*X[v], noise, vi, S)
        zeros = np.zeros((N * S, y_tr.shape[1], C), np.float32)
        run_y = lambda a: np.tile(a, (N, 1))
        d = ArrayData(x_tr, run_y(y_tr), zeros, x_te, run_y(y_te))
        template = ArrayData(*(a[0] for a in d))
        runners[v] = make_runners(
            config, template, cfg["learning_rate"], compiler_options=cfg["compiler_options"]
        )
        single, _, feats, logits = runners[v]
        res = single(d, jnp.tile(keys, N))
        teacher_acc[vi] = np.asarray(res.metrics.test[:, -1]).reshape(N, S)
        logits_tr[v] = np.asarray(logits(res.params, x_tr)).reshape(N, S, -1, C)
        logits_te[v] = np.asarray(logits(res.params, x_te)).reshape(N, S, -1, C)
        H[v], Hc[v] = held_out_features(
            np.asarray(feats(res.params, x_tr)), np.asarray(feats(res.params, x_te)), cfg, vi
        )
        print(
            f"[{NAME}] {v}: teacher accuracy by σ "
            + ", ".join(f"{sig:g}: {teacher_acc[vi, i].mean():.3f}" for i, sig in enumerate(noise)),
            flush=True,
        )
    student_acc = teacher_acc[:, 0]  # (V, S): the σ = 0 runs are the no-KD students

    # 2. KD students, per student view: all other views' teachers at all noise levels.
    kd_acc = np.full((V, V, N, S, G), np.nan)  # (student, teacher, σ, seed, grid)
    diverged = np.zeros((V, V, N, S, G), bool)
    for vj, v2 in enumerate(views):
        others = [vi for vi in range(V) if vi != vj]
        t = np.stack([logits_tr[views[vi]] for vi in others])  # (V-1, N, S, n, C)
        t = t.reshape(-1, S, *t.shape[3:]).transpose(1, 0, 2, 3)  # (S, P, n, C)
        x_tr, x_te = X[v2]
        res = runners[v2][1](ArrayData(x_tr, y_tr, t, x_te, y_te), keys, lams, temps)
        acc = np.asarray(res.metrics.test[..., -1]).reshape(S, V - 1, N, G)
        kd_acc[vj, others] = acc.transpose(1, 2, 0, 3)
        diverged[vj, others] = (
            np.asarray(res.diverged).reshape(S, V - 1, N, G).transpose(1, 2, 0, 3)
        )
        print(
            f"[{NAME}] KD into {v2}: mean Δacc "
            f"{100 * np.nanmean(kd_acc[vj] - student_acc[vj][None, None, :, None]):+.2f} pts",
            flush=True,
        )

    # 3. MI on held-out features.
    i2y, i12 = mi_arrays(H, logits_te, y_te, cfg, k_mi)

    # 4. The bias-aware check per setting, seed check_seed.
    arrays = run_checks(Hc, y_te[cfg["check_seed"]], cfg)
    arrays |= {
        "teacher_acc": teacher_acc,
        "student_acc": student_acc,
        "kd_acc": kd_acc,
        "diverged": diverged,
        "i2y": i2y,
        "i12": i12,
        "lams": lams,
        "temps": temps,
    }
    summary = summarise(arrays, cfg)
    directory = results_dir(NAME, out, quick)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, **summary})
    plot(directory, figures_dir(figures, quick))
    return summary


def held_out_features(h_tr, h_te, cfg, vi: int):
    """One view's hidden features (N·S, n | m, hidden), run r = σ index · S + seed, reduced for
    the MI pairs and the check: (H[σ index][seed] = reduce_features, Hc[σ index] =
    check_features at seed cfg["check_seed"])."""
    N, S, s0 = len(cfg["noise"]), cfg["seeds"], cfg["check_seed"]
    Hc = [
        check_features(h_tr[i * S + s0], h_te[i * S + s0], cfg, seed=(vi, i, s0, 7))
        for i in range(N)
    ]
    H = [
        [reduce_features(h_tr[i * S + s], h_te[i * S + s], cfg, seed=(vi, i, s)) for s in range(S)]
        for i in range(N)
    ]
    return H, Hc


def mi_arrays(H, logits_te, y_te, cfg, key):
    """Both estimator pairs' MIs on held-out features H[view][σ index][seed] (held_out_features),
    with logits_te[view] (N, S, m, C) for the Barber–Agakov bound:
    i2y (pair, view, seed, value/se) of each σ = 0 student, i12 (pair, student, teacher, σ, seed,
    value/se), NaN where teacher = student."""
    views, S, k = tuple(cfg["views"]), cfg["seeds"], cfg["k"]
    V, N = len(views), len(cfg["noise"])
    i2y = np.zeros((2, V, S, 2))
    i12 = np.full((2, V, V, N, S, 2), np.nan)
    mkey = lambda *ix: jax.random.fold_in(key, int(np.ravel_multi_index(ix, (V, V, N + 1, S))))
    pairs = tuple(ESTIMATOR_PAIRS)
    for vj in range(V):
        for s in range(S):
            h2 = H[views[vj]][0][s]
            m = mi_label(h2, y_te[s], logits_te[views[vj]][0, s], key=mkey(vj, vj, N, s), k=k)
            for p, name in enumerate(pairs):
                i2y[p, vj, s] = m[name]
            for vi in range(V):
                if vi == vj:
                    continue
                for i in range(N):
                    m = mi_teacher_student(H[views[vi]][i][s], h2, key=mkey(vj, vi, i, s), k=k)
                    for p, name in enumerate(pairs):
                        i12[p, vj, vi, i, s] = m[name]
    return i2y, i12


def gaps_by_setting(i2y, i12, idx) -> dict:
    """{pair: per-seed gap I(H1;H2) − I(H2;Y) (settings, S)} over settings idx of (vj, vi, i)."""
    return {
        name: np.stack([i12[p, vj, vi, i, :, 0] - i2y[p, vj, :, 0] for vj, vi, i in idx])
        for p, name in enumerate(ESTIMATOR_PAIRS)
    }


def setting_index(cfg) -> list:
    """The settings (student vj, teacher vi, σ index i), teacher ≠ student, in results order."""
    V, N = len(cfg["views"]), len(cfg["noise"])
    return [(vj, vi, i) for vj in range(V) for vi in range(V) if vi != vj for i in range(N)]


def run_checks(Hc, y, cfg) -> dict:
    """check_cch on every setting's held-out features (Hc[view][σ index], see check_features):
    the check_<variant>_<field> arrays of _real.check_arrays, in setting_index order."""
    import time

    views, results, t0 = cfg["views"], [], time.perf_counter()
    for r, (vj, vi, i) in enumerate(setting_index(cfg)):
        results.append(check_setting(Hc[views[vi]][i], Hc[views[vj]][0], y, cfg, seed=r))
        if r % 10 == 9:
            print(f"[{NAME}] check: {r + 1} settings, {time.perf_counter() - t0:.0f} s", flush=True)
    return check_arrays(results)


def settings(arrays, cfg):
    """Per-seed (gap[pair], Δacc) over settings (student, teacher, σ) with teacher ≠ student.

    Returns (index list of (vj, vi, i), {pair: gap (settings, S)}, delta (settings, S))."""
    idx = setting_index(cfg)
    d = arrays["kd_acc"].mean(-1) - arrays["student_acc"][:, None, None, :]  # (V, V, N, S)
    delta = np.stack([d[vj, vi, i] for vj, vi, i in idx])
    return idx, gaps_by_setting(arrays["i2y"], arrays["i12"], idx), delta


def spearman(gaps, delta, noise_ix) -> dict:
    """Spearman rank correlation of the mean gap with the mean Δacc over settings: all settings,
    and σ = 0 only. {pair: {"all": [ρ, p], "sigma0": [ρ, p]}}."""
    from scipy.stats import spearmanr

    d = delta.mean(1)
    out = {}
    for name, g in gaps.items():
        gm = g.mean(1)
        out[name] = {}
        for label, sel in (("all", slice(None)), ("sigma0", noise_ix == 0)):
            if np.size(d[sel]) > 2:
                r = spearmanr(gm[sel], d[sel])
                out[name][label] = [float(r.statistic), float(r.pvalue)]
    return out


def summarise(arrays, cfg) -> dict:
    views, noise = cfg["views"], cfg["noise"]
    idx, gaps, delta = settings(arrays, cfg)
    i2y = arrays["i2y"][..., 0].mean(-1)  # (pair, V)
    ranking = [views[j] for j in np.argsort(-i2y[0])]
    rows = []
    dm, ds = mean_sem(delta)
    for r, (vj, vi, i) in enumerate(idx):
        row = {
            "student": views[vj],
            "teacher": views[vi],
            "noise": noise[i],
            "teacher_acc": float(arrays["teacher_acc"][vi, i].mean()),
            "student_acc": float(arrays["student_acc"][vj].mean()),
            "delta_acc": float(dm[r]),
            "delta_acc_sem": float(ds[r]),
            "delta_acc_beyond_2sem": bool(abs(dm[r]) > 2 * ds[r]),
            "seeds_for_2sem_acc": seeds_for_2sem(delta[r]),
        }
        for name, g in gaps.items():
            gm, gs = mean_sem(g[r])
            row[f"gap_{name}"], row[f"gap_{name}_sem"] = float(gm), float(gs)
        rows.append(row | check_row(arrays, r))
    tallies = {name: tally(g, delta) for name, g in gaps.items()}
    for name, t in tallies.items():
        print(f"[{NAME}] CCH ({name}) vs observed: {tally_line(t)}")
    checks = check_tallies(arrays, delta)
    for v in ("full", "pca"):
        print(f"[{NAME}] cch check ({v}) vs observed: {check_tally_line(checks[v])}")
    noise_ix = np.array([i for _, _, i in idx])
    checks_by_noise = {
        f"{sigma:g}": check_tallies(
            {k: a[noise_ix == i] for k, a in arrays.items() if k.startswith("check_")},
            delta[noise_ix == i],
        )
        for i, sigma in enumerate(noise)
    }
    by_noise = {
        f"{sigma:g}": {
            name: tally(g[noise_ix == i], delta[noise_ix == i]) for name, g in gaps.items()
        }
        for i, sigma in enumerate(noise)
    }
    beyond = sum(r["delta_acc_beyond_2sem"] for r in rows)
    need = [
        r["seeds_for_2sem_acc"]
        for r in rows
        if not r["delta_acc_beyond_2sem"] and r["seeds_for_2sem_acc"]
    ]
    print(
        f"[{NAME}] Δacc beyond 2 SEM in {beyond}/{len(rows)} settings; the others "
        f"would need {min(need, default=0)}–{max(need, default=0)} seeds (median "
        f"{int(np.median(need)) if need else 0}) at their measured mean and spread",
        flush=True,
    )
    return {
        "delta_acc_beyond_2sem": beyond,
        "seeds_for_2sem_acc_of_the_others": need,
        "tallies_by_noise": by_noise,
        "spearman_gap_delta": spearman(gaps, delta, noise_ix),
        "ranking_by_i_h_y": ranking,
        "i_h_y_knn": dict(zip(views, i2y[0].tolist(), strict=True)),
        "i_h_y_ba": dict(zip(views, i2y[1].tolist(), strict=True)),
        "tallies": tallies,
        "check_tallies": checks,
        "check_tallies_by_noise": checks_by_noise,
        "rows": rows,
        "diverged": int(arrays["diverged"].sum()),
    }


def plot(directory, figures) -> list:
    import matplotlib as mpl

    arrays, meta = load_results(directory)
    cfg = meta["config"]
    views, noise = cfg["views"], cfg["noise"]
    idx, gaps, delta = settings(arrays, cfg)
    dm, ds = mean_sem(delta)
    fig, axes = new_figure(1, 3, figsize=(18, 5.4), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    cmap = mpl.colormaps["viridis"]
    noise_ix = np.array([i for _, _, i in idx])
    for ax, (name, g) in zip(axes[:2], gaps.items(), strict=True):
        gm, gs = mean_sem(g)
        for i, sigma in enumerate(noise):
            sel = noise_ix == i
            ax.errorbar(
                gm[sel],
                100 * dm[sel],
                xerr=2 * gs[sel],
                yerr=200 * ds[sel],
                fmt="o",
                ms=4,
                lw=0.6,
                alpha=0.8,
                color=cmap(i / max(len(noise) - 1, 1)),
                label=f"teacher noise σ = {sigma:g}",
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        t = meta["tallies"][name]
        est = ESTIMATOR_PAIRS[name]
        ax.set_xlabel(
            f"MI gap I(H1;H2) [{est[0]}, PCA {cfg[PCA[name]]}] − I(H2;Y) [{est[1]}]  [nats]"
        )
        ax.set_ylabel("Δ test accuracy, KD − no KD  [points]")
        ax.set_title(
            f"{name} estimators: CCH sign = observed sign in {t['agree']}/{t['settings']}\n"
            f"(both beyond 2 SEM: {t['agree_confident_and_significant']}/"
            f"{t['confident_and_significant']}); bars ± 2 SEM over seeds",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="best")
    # Heat map at σ = 0: teacher rows, student columns, views ranked by I(H;Y) (knn).
    ax = axes[2]
    order = [views.index(v) for v in meta["ranking_by_i_h_y"]]
    V = len(views)
    mat = np.full((V, V), np.nan)
    gap0 = np.full((V, V), np.nan)
    gk, _ = mean_sem(gaps["knn"])
    for r, (vj, vi, i) in enumerate(idx):
        if i == 0:
            mat[order.index(vi), order.index(vj)] = 100 * dm[r]
            gap0[order.index(vi), order.index(vj)] = gk[r]
    lim = np.nanmax(np.abs(mat)) if np.isfinite(mat).any() else 1.0
    im = ax.imshow(mat, cmap="RdBu", vmin=-lim, vmax=lim)
    for a in range(V):
        for b in range(V):
            if np.isfinite(mat[a, b]):
                mark = "+" if gap0[a, b] > 0 else "−"
                white = abs(mat[a, b]) > 0.6 * lim
                ax.text(
                    b,
                    a,
                    f"{mat[a, b]:+.1f}\n({mark})",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if white else "k",
                )
    names = [f"{views[j]}\n{meta['i_h_y_knn'][views[j]]:.2f}" for j in order]
    ax.set_xticks(range(V), names, fontsize=8)
    ax.set_yticks(range(V), [views[j] for j in order], fontsize=8)
    ax.set_xlabel("student view (I(H2;Y) [mixed], nats)")
    ax.set_ylabel("teacher view")
    ax.grid(False)
    ax.set_title("Δ accuracy [points] at σ = 0; (+/−) = sign of the knn MI gap", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="Δ accuracy [points]")
    fig.suptitle(
        "UCI multiple features (our reconstruction): MLP teacher on view v1 (+ noise σ) → MLP "
        f"student on v2; {cfg['seeds']} splits, λ ∈ {list(cfg['lams'])} × T ∈ "
        f"{list(cfg['temperatures'])}, {cfg['steps']} steps"
    )
    return [save_figure(fig, figures / f"{NAME}.png")]


def tables(directory="results/multiview") -> str:
    """docs/results.md's multiview tables (per noise level; every pair and σ), from a saved run:
    `python -m experiments.multiview --table [DIR]`. Re-summarises the saved arrays."""
    arrays, meta = load_results(directory)
    cfg = meta["config"]
    s = summarise(arrays, cfg)
    pairs = tuple(ESTIMATOR_PAIRS)
    head = ["σ", "KD helps", "Δacc beyond 2 SEM"]
    for p in pairs:
        head += [f"CCH holds ({p})", f"agree ({p})", f"agree, both beyond 2 SEM ({p})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    noise = [f"{x:g}" for x in cfg["noise"]]
    rows = s["rows"]
    for key in [*noise, "all"]:
        sel = [r for r in rows if key == "all" or f"{r['noise']:g}" == key]
        tallies = s["tallies"] if key == "all" else s["tallies_by_noise"][key]
        t0 = tallies[pairs[0]]
        cells = [key, f"{t0['kd_helps']}/{t0['settings']}"]
        cells.append(f"{sum(r['delta_acc_beyond_2sem'] for r in sel)}/{len(sel)}")
        for p in pairs:
            t = tallies[p]
            cells += [
                f"{t['cch_holds']}/{t['settings']}",
                f"{t['agree']}/{t['settings']}",
                f"{t['agree_confident_and_significant']}/{t['confident_and_significant']}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    rank = {v: i for i, v in enumerate(s["ranking_by_i_h_y"])}
    order = sorted(
        {(r["teacher"], r["student"]) for r in rows}, key=lambda p: (rank[p[0]], rank[p[1]])
    )
    lines += ["", "| teacher → student | " + " | ".join(f"σ = {x}" for x in noise) + " |"]
    lines.append("|" + "---|" * (len(noise) + 1))
    by = {(r["teacher"], r["student"], f"{r['noise']:g}"): r for r in rows}

    def cell(r):
        d = 100 * r["delta_acc"]
        bold = "**" if r["delta_acc_beyond_2sem"] else ""
        marks = [
            f"{r[f'gap_{p}']:+.2f} {'✓' if (r[f'gap_{p}'] > 0) == (d > 0) else '✗'}" for p in pairs
        ]
        return f"{bold}{d:+.1f}{bold} / " + " / ".join(marks)

    for t, v in order:
        lines.append(f"| {t} → {v} | " + " | ".join(cell(by[t, v, x]) for x in noise) + " |")
    rho = s["spearman_gap_delta"]
    lines += [
        "",
        "Spearman ρ (mean gap vs mean Δacc): "
        + "; ".join(
            f"{p}: all {rho[p]['all'][0]:+.2f} (p = {rho[p]['all'][1]:.2g}), σ = 0 "
            f"{rho[p]['sigma0'][0]:+.2f} (p = {rho[p]['sigma0'][1]:.2g})"
            for p in pairs
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--table"]:
        print(tables(*sys.argv[2:3]))
    else:
        sys.exit(
            "usage: python -m experiments.multiview --table [DIR]  (runs: cch reproduce multiview)"
        )
