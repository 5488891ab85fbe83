"""The synthetic classification family of the Modality Focusing Hypothesis code (zihuixue/MFH,
gauss/main.py, mode increase_gamma), rebuilt from its description (our reconstruction):

  decisive latents xs ~ N(0, I₂₀); label y = 1[aᵀxs > 0], a ~ N(0, I₂₀) per data set;
  student modality x2 (50 dims): xs[:, 0:10] in its first 10 dims, N(0, 1) noise elsewhere;
  teacher modality x1 (25 dims): the window xs[:, 10−o : 20−o] in its first 10 dims (it shares
  o ∈ {0, 2, …, 10} decisive dims with x2), N(0, 1) noise elsewhere; 200 train / 1000 test.

A linear teacher (logistic regression on x1) is distilled into a linear student on x2 with
classification KD (1 − λ)·CE + λ·T²·KL, over λ × T, vmapped over data sets (seeds) × λ × T under
one jit. Δaccuracy = test accuracy with KD − without (λ = 0), same data set.

MI gap, semi-closed form: the logits H1 = teacher, H2 = the no-KD student are linear in Gaussian
inputs, so I(H1; H2) = −½ log(1 − ρ²) exactly (ρ from the weights and the input covariance);
I(H2; Y) with Y = 1[g > 0], g = aᵀxs jointly Gaussian with H2 (correlation r):
I = log 2 − E_h[h_b(Φ(r h / √(1 − r²)))], h ~ N(0, 1), by Gauss–Hermite quadrature (nats).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr

from cch_jax.train import ArrayData, TrainConfig, make_train
from experiments._common import (
    figures_dir,
    load_results,
    new_figure,
    results_dir,
    save_figure,
    save_results,
)

NAME = "mfh_classification"
D_LATENT, D_STUDENT, D_TEACHER, WINDOW = 20, 50, 25, 10
CONFIG = dict(
    overlaps=(0, 2, 4, 6, 8, 10),
    lams=(0.2, 0.3, 0.5, 0.7, 0.8),
    temperatures=(1.0, 2.0, 3.0, 4.0),
    seeds=20,
    n_train=200,
    n_test=1000,
    steps=500,
    learning_rate=0.05,
)
QUICK = dict(seeds=10, steps=300)


def embedding(overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(M1, M2): x1 = M1 [xs; ε1], x2 = M2 [xs; ε2] with ε1 (15), ε2 (40) unit noise."""
    start = WINDOW - overlap
    m1 = np.zeros((D_TEACHER, D_LATENT + D_TEACHER - WINDOW))
    m1[np.arange(WINDOW), start + np.arange(WINDOW)] = 1.0
    m1[WINDOW:, D_LATENT:] = np.eye(D_TEACHER - WINDOW)
    m2 = np.zeros((D_STUDENT, D_LATENT + D_STUDENT - WINDOW))
    m2[np.arange(WINDOW), np.arange(WINDOW)] = 1.0
    m2[WINDOW:, D_LATENT:] = np.eye(D_STUDENT - WINDOW)
    return m1, m2


def sample(rng, overlap, n, a):
    """(x1 (n, 25), x2 (n, 50), y (n,)) of the family."""
    m1, m2 = embedding(overlap)
    xs = rng.standard_normal((n, D_LATENT))
    x1 = np.concatenate([xs, rng.standard_normal((n, D_TEACHER - WINDOW))], 1) @ m1.T
    x2 = np.concatenate([xs, rng.standard_normal((n, D_STUDENT - WINDOW))], 1) @ m2.T
    return x1.astype(np.float32), x2.astype(np.float32), (xs @ a > 0).astype(np.int32)


def logit_direction(params):
    """w (p,) with logit difference f1 − f0 = wᵀx + b for a 2-class linear model."""
    k = np.asarray(params["params"]["head"]["kernel"])
    return k[..., 1] - k[..., 0]


def gaussian_mi_gap(w1, w2, a, overlap):
    """(I(H1; H2), I(H2; Y)) in nats for H1 = w1ᵀx1, H2 = w2ᵀx2, Y = 1[aᵀxs > 0]."""
    m1, m2 = embedding(overlap)
    # Common latent vector u = [xs (20), ε1 (15), ε2 (40)]: x1 = A1 u, x2 = A2 u, g = aᵀxs.
    d = D_LATENT + (D_TEACHER - WINDOW) + (D_STUDENT - WINDOW)
    A1, A2 = np.zeros((D_TEACHER, d)), np.zeros((D_STUDENT, d))
    A1[:, : D_LATENT + D_TEACHER - WINDOW] = m1
    A2[:, :D_LATENT] = m2[:, :D_LATENT]
    A2[:, D_LATENT + D_TEACHER - WINDOW :] = m2[:, D_LATENT:]
    h1, h2, g = w1 @ A1, w2 @ A2, np.concatenate([a, np.zeros(d - D_LATENT)])
    corr = lambda u, v: (u @ v) / np.sqrt((u @ u) * (v @ v))
    rho, r = corr(h1, h2), corr(h2, g)
    i_ts = -0.5 * np.log1p(-(rho**2))
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # ∫ f(h) φ(h) dh
    p = np.clip(ndtr(r * nodes / np.sqrt(max(1 - r**2, 1e-300))), 1e-300, 1 - 1e-16)
    hb = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    i_sy = np.log(2.0) - (weights @ hb) / np.sqrt(2 * np.pi)
    return i_ts, i_sy


def _config(cfg):
    return TrainConfig(
        task="classification",
        model="linear",
        model_kwargs={"out": 2, "use_bias": True},
        steps=cfg["steps"],
        eval_every=cfg["steps"],
        optimizer="adam",
    )


def make_runners(cfg):
    """Jitted (teachers, students) functions, built once: every overlap has the same shapes, so
    each compiles once for the whole experiment."""
    n, m = cfg["n_train"], cfg["n_test"]
    config, lr = _config(cfg), cfg["learning_rate"]
    f32 = lambda *shape: jnp.zeros(shape, jnp.float32)
    i32 = lambda *shape: jnp.zeros(shape, jnp.int32)
    t_train = make_train(
        config, ArrayData(f32(n, D_TEACHER), i32(n), f32(n, 2), f32(m, D_TEACHER), i32(m))
    )
    s_train = make_train(
        config, ArrayData(f32(n, D_STUDENT), i32(n), f32(n, 2), f32(m, D_STUDENT), i32(m))
    )
    teachers = jax.jit(jax.vmap(lambda d, key: t_train(d, key, 0.0, 1.0, lr)))
    grid = jax.vmap(lambda d, key, lam, t: s_train(d, key, lam, t, lr), in_axes=(None, None, 0, 0))
    students = jax.jit(jax.vmap(grid, in_axes=(0, 0, None, None)))
    return teachers, students


def run_overlap(overlap, cfg, key, runners):
    """Train teachers, then students over (seed, λ, T) for one overlap."""
    teachers, students_fn = runners
    rng = np.random.default_rng(1000 + overlap)
    S, n = cfg["seeds"], cfg["n_train"]
    a = rng.standard_normal((S, D_LATENT))
    sets = [sample(rng, overlap, n + cfg["n_test"], a[s]) for s in range(S)]
    stack = lambda i, sl: jnp.asarray(np.stack([d[i][sl] for d in sets]))
    x1_tr, x1_te = stack(0, slice(0, n)), stack(0, slice(n, None))
    x2_tr, x2_te = stack(1, slice(0, n)), stack(1, slice(n, None))
    y_tr, y_te = stack(2, slice(0, n)), stack(2, slice(n, None))
    keys = jax.random.split(key, S)

    # Teachers: logistic regression on x1 (λ = 0: no KD term), one per data set.
    zeros = jnp.zeros((S, n, 2), x1_tr.dtype)
    teach = teachers(ArrayData(x1_tr, y_tr, zeros, x1_te, y_te), keys)
    w_t = logit_direction(teach.params)  # (S, 25)
    head = teach.params["params"]["head"]
    t_logits = jnp.einsum("snp,spc->snc", x1_tr, head["kernel"], precision="highest")
    t_logits = t_logits + head["bias"][:, None, :]

    # Students: vmap over data sets × (λ, T) grid (λ = 0 included as the no-KD baseline).
    lams = np.array([0.0, *cfg["lams"]])
    grid_l, grid_t = (g.ravel() for g in np.meshgrid(lams, cfg["temperatures"], indexing="ij"))
    students = students_fn(
        ArrayData(x2_tr, y_tr, t_logits, x2_te, y_te),
        keys,
        jnp.asarray(grid_l),
        jnp.asarray(grid_t),
    )
    acc = np.asarray(students.metrics.test[..., -1]).reshape(S, len(lams), -1)  # (S, λ, T)
    w_s = logit_direction(students.params).reshape(S, len(lams), -1, D_STUDENT)[:, 0, 0]
    mi = np.array([gaussian_mi_gap(w_t[s], w_s[s], a[s], overlap) for s in range(S)])
    return {
        "teacher_acc": np.asarray(teach.metrics.test[..., -1]),
        "student_acc": acc,
        "mi_teacher_student": mi[:, 0],
        "mi_student_label": mi[:, 1],
        "diverged": np.asarray(students.diverged).reshape(S, len(lams), -1),
    }


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    arrays, summary, runners = {}, [], make_runners(cfg)
    for overlap in cfg["overlaps"]:
        r = run_overlap(overlap, cfg, jax.random.key(overlap), runners)
        arrays.update({f"o{overlap}/{k}": v for k, v in r.items()})
        d_acc = r["student_acc"][:, 1:] - r["student_acc"][:, :1]
        gap = r["mi_teacher_student"] - r["mi_student_label"]
        summary.append(
            {
                "overlap": overlap,
                "teacher_acc": float(r["teacher_acc"].mean()),
                "student_acc_no_kd": float(r["student_acc"][:, 0, 0].mean()),
                "delta_acc_mean": float(d_acc.mean()),
                "gap_mean": float(gap.mean()),
                "cch_holds_fraction": float(np.mean(gap > 0)),
                "diverged": int(r["diverged"].sum()),
            }
        )
        print(
            f"[{NAME}] overlap {overlap}: gap {gap.mean():+.3f} nats, "
            f"Δacc {100 * d_acc.mean():+.2f} pts"
        )
    directory = results_dir(NAME, out, quick)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, "overlaps": summary})
    plot(directory, figures_dir(figures, quick))
    return {"overlaps": summary}


def plot(directory, figures) -> list:
    import matplotlib as mpl

    arrays, meta = load_results(directory)
    cfg = meta["config"]
    overlaps, lams, temps = cfg["overlaps"], cfg["lams"], cfg["temperatures"]
    fig, (ax_o, ax_g) = new_figure(1, 2, figsize=(13, 4.8))
    colours = mpl.colormaps["viridis"](np.linspace(0, 0.9, len(lams)))
    for j, lam in enumerate(lams):
        means, sems = [], []
        for o in overlaps:
            acc = arrays[f"o{o}/student_acc"]
            d = (acc[:, j + 1] - acc[:, :1]).mean(axis=1)  # average over T, per seed
            means.append(100 * d.mean())
            sems.append(100 * d.std(ddof=1) / np.sqrt(len(d)))
        ax_o.errorbar(
            overlaps,
            means,
            yerr=2 * np.array(sems),
            marker="o",
            capsize=2,
            color=colours[j],
            label=f"λ = {lam:g}",
        )
    ax_o.axhline(0, color="k", lw=0.8)
    ax_o.set_xlabel("decisive dims shared by teacher and student modality (o)")
    ax_o.set_ylabel("Δ test accuracy, KD − no KD  [points]")
    ax_o.set_title(f"mean over T ∈ {list(temps)}, {cfg['seeds']} data sets (± 2 SEM)", fontsize=9)
    ax_o.legend(fontsize=8)
    cmap = mpl.colormaps["plasma"]
    for k, o in enumerate(overlaps):
        acc = arrays[f"o{o}/student_acc"]
        gap = arrays[f"o{o}/mi_teacher_student"] - arrays[f"o{o}/mi_student_label"]
        d = 100 * (acc[:, 1:] - acc[:, :1]).mean(axis=(1, 2))
        ax_g.scatter(gap, d, s=14, color=cmap(k / max(len(overlaps) - 1, 1)), label=f"o = {o}")
    ax_g.axhline(0, color="k", lw=0.8)
    ax_g.axvline(0, color="k", lw=0.8, ls="--")
    ax_g.set_xlabel("MI gap I(H1;H2) − I(H2;Y)  [nats]  (logits; Gaussian closed form)")
    ax_g.set_ylabel("Δ test accuracy (mean over λ, T)  [points]")
    ax_g.set_title(
        "one point per data set; right of the dashed line CCH predicts 'helps'", fontsize=9
    )
    ax_g.legend(fontsize=8, ncol=2)
    fig.suptitle(
        "MFH synthetic classification (our reconstruction): linear teacher on x1 → linear student "
        f"on x2, {cfg['n_train']} train / {cfg['n_test']} test"
    )
    return [save_figure(fig, figures / f"{NAME}.png")]
