"""Helpers shared by the real-data reproductions (multiview, omics, mnist_m): stratified splits,
standardisation, PCA, the two MI estimator pairs, verdict tallies and vmapped MLP runners.
See experiments/multiview.py for how they are used and docs/results.md for the definitions.
"""

from __future__ import annotations

import jax
import numpy as np

from cch_jax.mi import estimate
from cch_jax.models import make_model
from cch_jax.train import ArrayData, TrainConfig, make_train

# ---------------------------------------------------------------------------------------------
# Shared by the real-data experiments (multiview, omics, mnist_m).
# ---------------------------------------------------------------------------------------------

ESTIMATOR_PAIRS = {
    "knn": ("ksg", "mixed"),  # I(H1;H2) by KSG, I(H2;Y) by Ross's mixed estimator
    "gauss_ba": ("gaussian", "BA"),  # I(H1;H2) Gaussian, I(H2;Y) Barber–Agakov bound
}


PCA = {"knn": "pca_knn", "gauss_ba": "pca_gauss"}  # the config key of each pair's PCA dimension


def stratified_split(labels, test_fraction: float, seed: int):
    """(train_idx, test_idx): a random split with round(test_fraction · n_c) test rows per class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 20240601])
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * idx.size))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def standardise(train, test):
    """z-score both with the training split's mean and sd (sd 0 → 1)."""
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return ((train - mu) / sd).astype(np.float32), ((test - mu) / sd).astype(np.float32)


def pca_reduce(h_train, h_test, dim: int, *, seed=0):
    """h_test projected on the top-`dim` principal axes of h_train (components with ~0 variance
    dropped), plus a 1e-6·sd jitter that breaks exact ties (e.g. rows whose ReLUs are all off)."""
    h_train = np.asarray(h_train, np.float64)
    h_test = np.asarray(h_test, np.float64)
    mu = h_train.mean(0)
    _, s, vt = np.linalg.svd(h_train - mu, full_matrices=False)
    keep = min(dim, int(np.sum(s > 1e-6 * max(s[0], 1e-30))))
    z = (h_test - mu) @ vt[: max(keep, 1)].T
    sd = z.std(0) + 1e-12
    return z + 1e-6 * sd * np.random.default_rng(seed).standard_normal(z.shape)


def reduce_features(h_train, h_test, cfg, *, seed=0) -> dict:
    """{"knn": (m, pca_knn), "gaussian": (m, pca_gauss)} views of held-out features."""
    return {
        "knn": pca_reduce(h_train, h_test, cfg["pca_knn"], seed=seed),
        "gaussian": pca_reduce(h_train, h_test, cfg["pca_gauss"], seed=seed),
    }


def barber_agakov(logits, y):
    """I(H;Y) ≥ H(Y) − E[−log q(y|h)] with q = softmax(logits) of the network's own head, on
    held-out rows (H(Y) by the plug-in of the held-out label frequencies): (value, se) in nats."""
    logits = np.asarray(logits, np.float64)
    y = np.asarray(y)
    z = logits - logits.max(1, keepdims=True)
    log_q = z[np.arange(y.size), y] - np.log(np.exp(z).sum(1))
    log_p = np.log(np.bincount(y)[y] / y.size)
    terms = log_q - log_p
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(y.size))


def mi_label(h2: dict, y, logits, *, key, k: int = 3, subsets: int = 10) -> dict:
    """I(H2; Y) per estimator pair, {"knn": (value, se), "gauss_ba": (value, se)} in nats:
    the mixed kNN estimator on the reduced features, and the Barber–Agakov lower bound from the
    student's own softmax head (the Gaussian estimator with one-hot labels is not used: it is not
    bounded by H(Y) and returned > 6 nats for 10 balanced classes)."""
    y = np.asarray(y, np.int32)
    e = estimate(h2["knn"], y, key=key, estimator="mixed", k=k, subsets=subsets, labels=True)
    return {"knn": (e.value, e.stderr), "gauss_ba": barber_agakov(logits, y)}


def mi_teacher_student(h1: dict, h2: dict, *, key, k: int = 3, subsets: int = 10) -> dict:
    """I(H1; H2), {"knn": KSG, "gauss_ba": Gaussian} as (value, se) in nats."""
    ksg = estimate(h1["knn"], h2["knn"], key=key, estimator="ksg", k=k, subsets=subsets)
    gauss = estimate(h1["gaussian"], h2["gaussian"], key=key, estimator="gaussian")
    return {"knn": (ksg.value, ksg.stderr), "gauss_ba": (gauss.value, gauss.stderr)}


def mean_sem(a, axis=-1):
    """Mean and standard error of the mean over `axis` (NaNs ignored)."""
    a = np.asarray(a, np.float64)
    n = np.sum(np.isfinite(a), axis=axis)
    m = np.nanmean(a, axis=axis)
    sd = np.nanstd(a, axis=axis, ddof=1) if np.all(n > 1) else np.zeros_like(m)
    return m, sd / np.sqrt(np.maximum(n, 1))


def tally(gap, delta) -> dict:
    """CCH's prediction against the observed outcome over settings.

    gap, delta: (settings, seeds) per-seed MI gaps (nats) and Δaccuracies. Per setting the mean
    over seeds decides: CCH predicts "helps" when mean gap > 0; KD is observed to help when mean
    Δ > 0. "confident": |mean gap| > 2 SEM; "significant": |mean Δ| > 2 SEM.
    """
    g, gs = mean_sem(gap)
    d, ds = mean_sem(delta)
    holds, helps = g > 0, d > 0
    conf, sig = np.abs(g) > 2 * gs, np.abs(d) > 2 * ds
    both = conf & sig
    return {
        "settings": int(g.size),
        "cch_holds": int(holds.sum()),
        "kd_helps": int(helps.sum()),
        "holds_helps": int((holds & helps).sum()),
        "holds_hurts": int((holds & ~helps).sum()),
        "fails_helps": int((~holds & helps).sum()),
        "fails_hurts": int((~holds & ~helps).sum()),
        "agree": int((holds == helps).sum()),
        "confident_and_significant": int(both.sum()),
        "agree_confident_and_significant": int(((holds == helps) & both).sum()),
    }


def tally_line(t: dict) -> str:
    return (
        f"{t['agree']}/{t['settings']} agree (CCH holds & helps {t['holds_helps']}, "
        f"holds & hurts {t['holds_hurts']}, fails & helps {t['fails_helps']}, fails & hurts "
        f"{t['fails_hurts']}); both confident: {t['agree_confident_and_significant']}/"
        f"{t['confident_and_significant']}"
    )


def mlp_config(cfg, n_classes: int) -> TrainConfig:
    """The MLP (one hidden ReLU layer of cfg["hidden"]) used for teachers and students alike."""
    return TrainConfig(
        task="classification",
        model="mlp",
        model_kwargs={"hidden": (int(cfg["hidden"]),), "out": n_classes},
        steps=cfg["steps"],
        eval_every=cfg["steps"],
        optimizer="adam",
        schedule="cosine",
        batch_size=cfg["batch_size"],
    )


def make_runners(config: TrainConfig, template: ArrayData, learning_rate: float):
    """(single, kd, features, logits) for arrays shaped like `template` (one view).

    single(data, keys):          runs with λ = 0; data and keys have a leading run axis R.
    kd(data, keys, lams, temps): data.teacher_train (S, P, n, C), the rest (S, ...); keys (S,);
                                 lams, temps (G,) → results with axes (S, P, G).
    features(params, x) / logits(params, x): vmapped over a leading run axis of both (eager).
    """
    train = make_train(config, template)
    lr = learning_rate
    single = jax.jit(jax.vmap(lambda d, key: train(d, key, 0.0, 1.0, lr)))

    def per_seed(d, key, lams, temps):
        def per_teacher(t):
            dt = d._replace(teacher_train=t)
            return jax.vmap(lambda lam, tau: train(dt, key, lam, tau, lr))(lams, temps)

        return jax.vmap(per_teacher)(d.teacher_train)

    kd = jax.jit(jax.vmap(per_seed, in_axes=(0, 0, None, None)))
    model = make_model(config.model, **config.model_kwargs)
    # Not jitted: a handful of eager ops, cheaper than compiling one program per input shape.
    features = jax.vmap(lambda p, x: model.apply(p, x, method="features"))
    logits = jax.vmap(lambda p, x: model.apply(p, x))
    return single, kd, features, logits


def lam_temp_grid(cfg):
    """The flattened (λ, T) grid, λ fastest-varying last: (lams (G,), temps (G,))."""
    g_l, g_t = np.meshgrid(cfg["lams"], cfg["temperatures"], indexing="ij")
    return g_l.ravel().astype(np.float32), g_t.ravel().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The multiview experiment.
# ---------------------------------------------------------------------------------------------
