"""Helpers shared by the real-data reproductions (multiview, omics, mnist_m): stratified splits,
standardisation, PCA, the two MI estimator pairs, verdict tallies and vmapped MLP runners.
See experiments/multiview.py for how they are used and docs/results.md for the definitions.
"""

from __future__ import annotations

import math
import warnings

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

# XLA options (a config's `compiler_options`) that compile the training programs ~2.5x faster
# (LLVM without optimisation, same numbers) and run them slower: for runs of a few dozen steps
# whose time is nearly all compiling, such as the tests' smoke runs (tests/test_experiments_real.py).
COMPILE_FAST = {"xla_backend_optimization_level": 0}


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


def seed_keys(key, seeds: int):
    """(seeds,) training keys fold_in(key, s): prefix-stable, so a run with more seeds extends one
    with fewer (seed s trains the same networks whatever the seed count)."""
    return jax.vmap(lambda s: jax.random.fold_in(key, s))(np.arange(seeds))


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
    """Mean and standard error of the mean over `axis` (NaNs ignored; all NaN: NaN, e.g. a
    setting without a prediction)."""
    a = np.asarray(a, np.float64)
    n = np.sum(np.isfinite(a), axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN, as documented
        m = np.nanmean(a, axis=axis)
        # per entry: 0 where fewer than 2 values (a row of one seed must not zero the others')
        sd = np.where(n > 1, np.nanstd(a, axis=axis, ddof=1), 0.0)
    return m, sd / np.sqrt(np.maximum(n, 1))


def seeds_for_2sem(delta) -> int | None:
    """Seeds at which |mean Δ| would reach 2 SEM if mean and per-seed sd stayed as measured
    (ceil((2 sd / |mean|)²)); None when the mean is 0."""
    d = np.asarray(delta, np.float64)
    m, sd = abs(d.mean()), d.std(ddof=1)
    return None if m == 0 else max(2, math.ceil((2 * sd / m) ** 2))


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


def make_runners(
    config: TrainConfig, template: ArrayData, learning_rate: float, compiler_options=None
):
    """(single, kd, features, logits) for arrays shaped like `template` (one view).

    single(data, keys):          runs with λ = 0; data and keys have a leading run axis R.
    kd(data, keys, lams, temps): data.teacher_train (S, P, n, C), the rest (S, ...); keys (S,);
                                 lams, temps (G,) → results with axes (S, P, G).
    features(params, x) / logits(params, x): vmapped over a leading run axis of both (eager).
    compiler_options: XLA options of the two training programs' jit (see COMPILE_FAST).
    """
    train = make_train(config, template)
    lr = learning_rate
    jit = lambda f: jax.jit(f, compiler_options=compiler_options)  # noqa: E731
    single = jit(jax.vmap(lambda d, key: train(d, key, 0.0, 1.0, lr)))

    def per_seed(d, key, lams, temps):
        def per_teacher(t):
            dt = d._replace(teacher_train=t)
            return jax.vmap(lambda lam, tau: train(dt, key, lam, tau, lr))(lams, temps)

        return jax.vmap(per_teacher)(d.teacher_train)

    kd = jit(jax.vmap(per_seed, in_axes=(0, 0, None, None)))
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


# ---------------------------------------------------------------------------------------------
# The bias-aware CCH check (cch_jax.mi.check) on held-out features, full and PCA-reduced.
# ---------------------------------------------------------------------------------------------

CHECK_VARIANTS = ("full", "pca")  # all hidden units (constant ones dropped) / PCA to pca_check
VERDICT_CODE = {"cch-fails": -1, "inconclusive": 0, "cch-holds": 1}


def check_features(h_train, h_test, cfg, *, seed=0) -> dict:
    """{"full": held-out features without the columns constant on them (dead units),
    "pca": PCA to cfg["pca_check"] dims fitted on h_train}, for the bias-aware check."""
    h_test = np.asarray(h_test, np.float64)
    varies = np.ptp(h_test, axis=0) > 0
    return {
        "full": h_test[:, varies],
        "pca": pca_reduce(h_train, h_test, cfg["pca_check"], seed=seed),
    }


def families_side(result) -> int:
    """+1 / −1 when every family that ran puts its gap interval on that side of 0, else 0: the
    verdict the check would give without its validated-range rule (not a verdict outside it)."""
    sides = {f["side"] for f in result.families}
    return sides.pop() if len(sides) == 1 else 0


def check_setting(h1: dict, h2: dict, y, cfg, *, seed: int) -> dict:
    """{variant: CheckResult} of `check_cch` on the held-out features of one setting."""
    from cch_jax.mi.check import check_cch

    out = {}
    for v in CHECK_VARIANTS:
        fams = tuple(cfg["check_families"][v])
        out[v] = check_cch(h1[v], h2[v], np.asarray(y), labels=True, seed=seed, families=fams)
    return out


def check_arrays(results: list) -> dict:
    """Stack per-setting {variant: CheckResult} into arrays named check_<variant>_<field>:
    verdict (code −1 fails / 0 inconclusive / +1 holds), side (families_side), gap, gap_ci (·, 2),
    validated, reason (str), dims (·, 2), seconds."""
    out = {}
    for v in CHECK_VARIANTS:
        rs = [r[v] for r in results]
        out[f"check_{v}_verdict"] = np.array([VERDICT_CODE[r.verdict] for r in rs], np.int8)
        out[f"check_{v}_side"] = np.array([families_side(r) for r in rs], np.int8)
        out[f"check_{v}_gap"] = np.array([r.gap for r in rs])
        out[f"check_{v}_gap_ci"] = np.array([r.gap_ci for r in rs]).reshape(-1, 2)
        out[f"check_{v}_validated"] = np.array([r.validated for r in rs])
        out[f"check_{v}_reason"] = np.array([r.validated_reason for r in rs])
        out[f"check_{v}_dims"] = np.array([r.dims[:2] for r in rs]).reshape(-1, 2)
        out[f"check_{v}_seconds"] = np.array([r.seconds for r in rs])
    return out


def binomial_ci(k: int, n: int) -> list:
    """Exact (Clopper–Pearson) 95 % interval of k/n; None when n = 0 (no decisive setting)."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(0.95)
    return [float(ci.low), float(ci.high)]


def check_tally(verdict, delta) -> dict:
    """The check's verdicts (codes, (settings,)) against the observed sign of Δ (settings, seeds).

    KD is observed to help when mean Δ > 0; "significant": |mean Δ| > 2 SEM. Agreement is counted
    among decisive settings (verdict ≠ 0), with an exact binomial 95 % interval.
    """
    verdict = np.asarray(verdict)
    d, ds = mean_sem(delta)
    helps, sig = d > 0, np.abs(d) > 2 * ds
    decisive = verdict != 0
    agree = decisive & ((verdict > 0) == helps)
    k, n = int(agree.sum()), int(decisive.sum())
    ks, ns = int((agree & sig).sum()), int((decisive & sig).sum())
    return {
        "settings": int(verdict.size),
        "holds": int((verdict > 0).sum()),
        "fails": int((verdict < 0).sum()),
        "inconclusive": int((~decisive).sum()),
        "kd_helps": int(helps.sum()),
        "decisive": n,
        "agree": k,
        "agree_ci95": binomial_ci(k, n),
        "significant": int(sig.sum()),
        "decisive_significant": ns,
        "agree_significant": ks,
        "agree_significant_ci95": binomial_ci(ks, ns),
    }


def check_tallies(arrays: dict, delta, prefix: str = "") -> dict:
    """{variant: check_tally of the verdicts, variant + "_side": of the families' sides}."""
    out = {}
    for v in CHECK_VARIANTS:
        out[v] = check_tally(arrays[f"{prefix}check_{v}_verdict"], delta)
        out[f"{v}_side"] = check_tally(arrays[f"{prefix}check_{v}_side"], delta)
    return out


def check_row(arrays: dict, r: int, prefix: str = "") -> dict:
    """The check's fields of setting r for a results row: {"check_<variant>": {...}}."""
    code = {c: name for name, c in VERDICT_CODE.items()}
    row = {}
    for v in CHECK_VARIANTS:
        a = lambda f, v=v: arrays[f"{prefix}check_{v}_{f}"][r]  # noqa: E731
        row[f"check_{v}"] = {
            "verdict": code[int(a("verdict"))],
            "families_side": int(a("side")),
            "gap": float(a("gap")),
            "gap_ci": [float(x) for x in a("gap_ci")],
            "validated": bool(a("validated")),
            "validated_reason": str(a("reason")),
            "dims": [int(x) for x in a("dims")],
        }
    return row


def check_tally_line(t: dict) -> str:
    lo, hi = t["agree_ci95"] or (float("nan"), float("nan"))
    return (
        f"holds {t['holds']}, fails {t['fails']}, inconclusive {t['inconclusive']} of "
        f"{t['settings']}; decisive agree {t['agree']}/{t['decisive']} (95 % CI {lo:.2f}–"
        f"{hi:.2f}); where |Δ| > 2 SEM: {t['agree_significant']}/{t['decisive_significant']}"
    )
