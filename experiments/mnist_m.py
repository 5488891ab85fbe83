"""CCH on images: a CNN teacher on (blurred) MNIST distilled into a CNN student on MNIST-M.

The paper's image experiment, as we reconstruct it (its exact protocol is not public to us; our
MNIST-M is rebuilt from scikit-image photos, docs/data.md). Teacher and student have identical
architectures (`CNNStudent`: conv-relu-pool × len(channels) → dense(hidden)-relu → 10 logits); the
teacher sees MNIST blurred with a Gaussian of std σ px, the student the paired MNIST-M image.
Blurring the teacher's modality lowers what it shares with the student, to move the teacher
across the CCH boundary.

Training set: the first n_train images of the `train` split (the same for every seed); test: the
first n_test of `test`. Seeds = initialisations and minibatch orders (and so teachers).
  * no-KD student: CNN on MNIST-M, λ = 0 (one run per seed, shared by every σ);
  * teachers, per σ and seed: CNN on blurred MNIST, cross-entropy only;
  * KD students, per σ: (1 − λ)·CE(y, s) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T)) over λ × T, teacher
    logits on the training images, same key as the seed's no-KD student; seeds × grid vmapped
    under one jit, one compile for all σ;
  * Δaccuracy = KD − no-KD test accuracy, same seed, averaged over the λ × T grid.

MI gap on the test images (as experiments/multiview.py): H = the dense hidden layer; H1 the
teacher's (blurred MNIST), H2 the no-KD student's (MNIST-M); PCA fitted on the features of
`pca_fit` training images; I(H1;H2) by KSG (PCA pca_knn) and Gaussian (PCA pca_gauss); I(H2;Y)
by the mixed kNN estimator (PCA pca_knn) and the Barber–Agakov bound of the student's softmax
head. CCH predicts "helps" at a σ when the mean gap over seeds is positive. MIs in nats.

The full configuration is GPU-sized (6 σ × 5 seeds × 20 grid points = 600 KD students of 3000
steps on 50 000 images); `--quick` runs on a CPU in minutes.
"""

from __future__ import annotations

import jax
import numpy as np

from cch_jax.models import make_model
from cch_jax.train import ArrayData, TrainConfig, make_train
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
    lam_temp_grid,
    mean_sem,
    mi_label,
    mi_teacher_student,
    reduce_features,
    tally,
    tally_line,
)

NAME = "mnist_m"
CONFIG = dict(
    sigmas=(0.0, 1.0, 2.0, 4.0, 6.0, 8.0),
    seeds=5,
    lams=(0.2, 0.3, 0.5, 0.7, 0.8),
    temperatures=(1.0, 2.0, 3.0, 4.0),
    n_train=50_000,
    n_test=10_000,
    channels=(32, 64),
    hidden=128,
    steps=3000,
    batch_size=128,
    learning_rate=1e-3,
    pca_fit=5000,
    pca_knn=4,
    pca_gauss=8,
    k=3,
    subsets=10,
    mi_n=5000,
    key=0,
)
QUICK = dict(
    sigmas=(0.0, 4.0, 8.0),
    seeds=3,
    lams=(0.5,),
    temperatures=(2.0,),
    n_train=1500,
    n_test=1000,
    channels=(6, 12),
    hidden=32,
    steps=120,
    batch_size=64,
    learning_rate=3e-3,
    pca_fit=1000,
    mi_n=1000,
)


def cnn_config(cfg) -> TrainConfig:
    return TrainConfig(
        task="classification",
        model="cnn",
        model_kwargs={"channels": tuple(cfg["channels"]), "hidden": int(cfg["hidden"]), "out": 10},
        steps=cfg["steps"],
        eval_every=cfg["steps"],
        optimizer="adam",
        schedule="cosine",
        batch_size=cfg["batch_size"],
    )


def make_runners(config: TrainConfig, template: ArrayData, learning_rate: float):
    """(single, kd, features, logits), jitted; the images are shared by all runs (not copied).

    single(data, keys): λ = 0 runs, one per key. kd(data, t_logits (S, n, C), keys (S,), lams,
    temps (G,)) → results with axes (S, G). features/logits(params with a run axis, x) → (R, m, ·).
    """
    train = make_train(config, template)
    lr = learning_rate
    single = jax.jit(jax.vmap(lambda d, key: train(d, key, 0.0, 1.0, lr), in_axes=(None, 0)))

    def per_seed(d, t, key, lams, temps):
        dt = d._replace(teacher_train=t)
        return jax.vmap(lambda lam, tau: train(dt, key, lam, tau, lr))(lams, temps)

    kd = jax.jit(jax.vmap(per_seed, in_axes=(None, 0, 0, None, None)))
    model = make_model(config.model, **config.model_kwargs)
    features = jax.jit(jax.vmap(lambda p, x: model.apply(p, x, method="features"), (0, None)))
    logits = jax.jit(jax.vmap(lambda p, x: model.apply(p, x), (0, None)))
    return single, kd, features, logits


def _batched(fn, params, x, size=2000):
    """fn(params, x) over row blocks of x (bounded memory), concatenated on axis 1."""
    return np.concatenate(
        [np.asarray(fn(params, x[i : i + size])) for i in range(0, len(x), size)], 1
    )


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    from cch_jax.data.real import load_mnist_pair

    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    sigmas, S = tuple(cfg["sigmas"]), cfg["seeds"]
    _, xs_tr, y_tr = load_mnist_pair("train", limit=cfg["n_train"])
    _, xs_te, y_te = load_mnist_pair("test", limit=cfg["n_test"])
    C = 10
    key = jax.random.key(cfg["key"])
    k_student, k_teacher, k_mi = jax.random.split(key, 3)
    keys = jax.random.split(k_student, S)
    t_keys = jax.random.split(k_teacher, S)
    config = cnn_config(cfg)
    lams, temps = lam_temp_grid(cfg)
    G = lams.size
    n_fit, n_mi = min(cfg["pca_fit"], cfg["n_train"]), min(cfg["mi_n"], cfg["n_test"])

    # No-KD students (shared by every σ).
    zeros = np.zeros((len(y_tr), C), np.float32)
    d_student = ArrayData(xs_tr, y_tr, zeros, xs_te, y_te)
    s_single, s_kd, s_feats, s_logits = make_runners(config, d_student, cfg["learning_rate"])
    base = s_single(d_student, keys)
    student_acc = np.asarray(base.metrics.test[:, -1])  # (S,)
    h_fit = _batched(s_feats, base.params, xs_tr[:n_fit])
    h_te = _batched(s_feats, base.params, xs_te[:n_mi])
    lg_te = _batched(s_logits, base.params, xs_te[:n_mi])
    H2 = [reduce_features(h_fit[s], h_te[s], cfg, seed=(0, s)) for s in range(S)]
    i2y = np.zeros((2, S, 2))
    for s in range(S):
        m = mi_label(
            H2[s],
            y_te[:n_mi],
            lg_te[s],
            key=jax.random.fold_in(k_mi, s),
            k=cfg["k"],
            subsets=cfg["subsets"],
        )
        for p, name in enumerate(ESTIMATOR_PAIRS):
            i2y[p, s] = m[name]
    print(
        f"[{NAME}] no-KD MNIST-M student: accuracy {student_acc.mean():.3f}, I(H2;Y) "
        f"{i2y[0, :, 0].mean():.3f} (mixed) / {i2y[1, :, 0].mean():.3f} (BA) nats",
        flush=True,
    )

    teacher_acc = np.zeros((len(sigmas), S))
    kd_acc = np.zeros((len(sigmas), S, G))
    diverged = np.zeros((len(sigmas), S, G), bool)
    i12 = np.zeros((2, len(sigmas), S, 2))
    t_runners = None
    for i, sigma in enumerate(sigmas):
        xt_tr, _, _ = load_mnist_pair("train", blur_sigma=sigma, limit=cfg["n_train"])
        xt_te, _, _ = load_mnist_pair("test", blur_sigma=sigma, limit=cfg["n_test"])
        d_teacher = ArrayData(xt_tr, y_tr, zeros, xt_te, y_te)
        if t_runners is None:
            t_runners = make_runners(config, d_teacher, cfg["learning_rate"])
        t_single, _, t_feats, t_logits = t_runners
        teach = t_single(d_teacher, t_keys)
        teacher_acc[i] = np.asarray(teach.metrics.test[:, -1])
        t_train_logits = _batched(t_logits, teach.params, xt_tr)  # (S, n, C)
        res = s_kd(d_student, t_train_logits, keys, lams, temps)
        kd_acc[i] = np.asarray(res.metrics.test[..., -1])
        diverged[i] = np.asarray(res.diverged)
        h1_fit = _batched(t_feats, teach.params, xt_tr[:n_fit])
        h1_te = _batched(t_feats, teach.params, xt_te[:n_mi])
        for s in range(S):
            h1 = reduce_features(h1_fit[s], h1_te[s], cfg, seed=(i + 1, s))
            m = mi_teacher_student(
                h1,
                H2[s],
                key=jax.random.fold_in(k_mi, 1000 + i * S + s),
                k=cfg["k"],
                subsets=cfg["subsets"],
            )
            for p, name in enumerate(ESTIMATOR_PAIRS):
                i12[p, i, s] = m[name]
        gap = i12[0, i, :, 0] - i2y[0, :, 0]
        print(
            f"[{NAME}] σ = {sigma:g}: teacher accuracy {teacher_acc[i].mean():.3f}, "
            f"Δacc {100 * (kd_acc[i] - student_acc[:, None]).mean():+.2f} pts, "
            f"gap (knn) {gap.mean():+.3f} nats",
            flush=True,
        )

    arrays = {
        "student_acc": student_acc,
        "teacher_acc": teacher_acc,
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


def settings(arrays):
    """{pair: gap (σ, S)}, Δacc (σ, S) averaged over the grid."""
    gaps = {
        name: arrays["i12"][p, :, :, 0] - arrays["i2y"][p, None, :, 0]
        for p, name in enumerate(ESTIMATOR_PAIRS)
    }
    delta = arrays["kd_acc"].mean(-1) - arrays["student_acc"][None, :]
    return gaps, delta


def summarise(arrays, cfg) -> dict:
    gaps, delta = settings(arrays)
    lams, temps = arrays["lams"], arrays["temps"]
    rows = []
    for i, sigma in enumerate(cfg["sigmas"]):
        dm, ds = mean_sem(delta[i])
        per_grid = (arrays["kd_acc"][i] - arrays["student_acc"][:, None]).mean(0)
        b = int(np.argmax(per_grid))
        row = {
            "sigma": sigma,
            "teacher_acc": float(arrays["teacher_acc"][i].mean()),
            "student_acc": float(arrays["student_acc"].mean()),
            "delta_acc": float(dm),
            "delta_acc_sem": float(ds),
            "grid_points_helping": int(np.sum(per_grid > 0)),
            "best_grid": {"lam": float(lams[b]), "T": float(temps[b]), "delta": float(per_grid[b])},
        }
        for p, (name, g) in enumerate(gaps.items()):
            gm, gs = mean_sem(g[i])
            row[f"gap_{name}"], row[f"gap_{name}_sem"] = float(gm), float(gs)
            row[f"i12_{name}"] = float(arrays["i12"][p, i, :, 0].mean())
            row[f"i2y_{name}"] = float(arrays["i2y"][p, :, 0].mean())
        rows.append(row)
    # Per (σ, λ, T) grid point too: CCH's verdict does not depend on λ, T.
    per_point = arrays["kd_acc"] - arrays["student_acc"][None, :, None]  # (σ, S, G)
    tallies = {name: tally(g, delta) for name, g in gaps.items()}
    tallies_grid = {
        name: tally(
            np.repeat(g, per_point.shape[-1], axis=0),
            per_point.transpose(0, 2, 1).reshape(-1, per_point.shape[1]),
        )
        for name, g in gaps.items()
    }
    for name, t in tallies.items():
        print(f"[{NAME}] CCH ({name}) vs observed, per σ: {tally_line(t)}")
    return {
        "rows": rows,
        "tallies": tallies,
        "tallies_per_grid_point": tallies_grid,
        "diverged": int(arrays["diverged"].sum()),
    }


def plot(directory, figures) -> list:
    import matplotlib as mpl

    arrays, meta = load_results(directory)
    cfg = meta["config"]
    sigmas = np.asarray(cfg["sigmas"], float)
    gaps, delta = settings(arrays)
    fig, (ax_s, ax_g, ax_m) = new_figure(1, 3, figsize=(18, 5.2))
    # (a) accuracies and Δ against σ.
    tm, ts = mean_sem(arrays["teacher_acc"])
    ax_s.errorbar(
        sigmas,
        100 * tm,
        yerr=200 * ts,
        marker="s",
        capsize=2,
        color="k",
        label="teacher (blurred MNIST)",
    )
    sm, ss = mean_sem(arrays["student_acc"])
    ax_s.axhline(100 * sm, color="C0", ls="--", label=f"no-KD student (MNIST-M): {100 * sm:.1f}")
    kd = arrays["kd_acc"].mean(-1)  # (σ, S)
    km, ks = mean_sem(kd)
    ax_s.errorbar(
        sigmas,
        100 * km,
        yerr=200 * ks,
        marker="o",
        capsize=2,
        color="C0",
        label="KD student (grid mean)",
    )
    ax_s.set_xlabel("teacher blur σ  [px]")
    ax_s.set_ylabel("test accuracy [%]  (± 2 SEM over seeds)")
    ax_s.set_title("teacher and student accuracy against the teacher's blur", fontsize=9)
    ax_s.legend(fontsize=8)
    # (b) Δ against the MI gap, one point per σ, both estimator pairs.
    dm, ds = mean_sem(delta)
    cmap = mpl.colormaps["viridis"]
    for name, marker in zip(gaps, ("o", "^"), strict=True):
        gm, gs = mean_sem(gaps[name])
        est = ESTIMATOR_PAIRS[name]
        for i, sigma in enumerate(sigmas):
            ax_g.errorbar(
                gm[i],
                100 * dm[i],
                xerr=2 * gs[i],
                yerr=200 * ds[i],
                fmt=marker,
                color=cmap(i / max(len(sigmas) - 1, 1)),
                capsize=2,
                ms=7,
                label=f"σ = {sigma:g}" if name == "knn" else None,
            )
        ax_g.plot([], [], marker, color="grey", label=f"{est[0]} (PCA {cfg[PCA[name]]}) − {est[1]}")
    ax_g.axhline(0, color="k", lw=0.8)
    ax_g.axvline(0, color="k", lw=0.8, ls="--")
    ax_g.set_xlabel("MI gap I(H1;H2) − I(H2;Y)  [nats]")
    ax_g.set_ylabel("Δ test accuracy, KD − no KD (grid mean)  [points]")
    t = meta["tallies"]
    ax_g.set_title(
        f"CCH sign = observed sign: knn {t['knn']['agree']}/{t['knn']['settings']}, "
        f"gauss_ba {t['gauss_ba']['agree']}/{t['gauss_ba']['settings']} "
        "(± 2 SEM over seeds)",
        fontsize=9,
    )
    ax_g.legend(fontsize=7, ncol=2)
    # (c) the MIs against σ.
    for p, (name, ls) in enumerate(zip(ESTIMATOR_PAIRS, ("-", ":"), strict=True)):
        est = ESTIMATOR_PAIRS[name]
        m12, s12 = mean_sem(arrays["i12"][p, :, :, 0])
        ax_m.errorbar(
            sigmas,
            m12,
            yerr=2 * s12,
            ls=ls,
            marker="o",
            color="C1",
            capsize=2,
            label=f"I(H1;H2) [{est[0]}]",
        )
        m2y, s2y = mean_sem(arrays["i2y"][p, :, 0])
        ax_m.axhline(m2y, ls=ls, color="C2", label=f"I(H2;Y) [{est[1]}] = {m2y:.2f}")
    ax_m.set_xlabel("teacher blur σ  [px]")
    ax_m.set_ylabel("mutual information  [nats]")
    ax_m.set_title("CCH predicts 'KD helps' where I(H1;H2) lies above I(H2;Y)", fontsize=9)
    ax_m.legend(fontsize=7)
    fig.suptitle(
        f"MNIST (blurred, teacher) → MNIST-M (student, our rebuild), CNN{tuple(cfg['channels'])}"
        f"+{cfg['hidden']}: {cfg['n_train']} train / {cfg['n_test']} test images, {cfg['steps']} "
        f"steps, {cfg['seeds']} seeds, λ ∈ {list(cfg['lams'])} × T ∈ {list(cfg['temperatures'])}"
    )
    return [save_figure(fig, figures / f"{NAME}.png")]
