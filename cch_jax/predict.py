"""Predict whether, and how much, KD helps, from the no-KD student alone (docs/predict.md).

A student with parameters w is trained on the KD objective L(w, λ) of `cch_jax.losses`
(regression: label + λ·kd; classification: (1 − λ)·CE + λ·T²·KL), plus an optional ridge α‖W‖².
At a minimiser ŵ₀ of L(·, 0) the implicit function theorem gives the first-order effect of KD:

    dŵ/dλ |₀ = −H⁻¹ ∂λ∇L(ŵ₀, 0),      H = ∇²L(ŵ₀, 0)                                    (P1)
    dR_val/dλ |₀ = ∇R_val(ŵ₀)ᵀ dŵ/dλ = −∇R_val(ŵ₀)ᵀ H⁻¹ ∂λ∇L(ŵ₀, 0)                      (P2)

∂λ∇L is the gradient of ∂λL: the KD loss (regression) or T²KL − CE (classification); it is
computed as a jvp in λ of ∇L, so it is always the engine's own loss. H⁻¹ is applied by conjugate
gradients on Hessian-vector products (jax.jvp of jax.grad), damped: (H + δI)⁻¹. R_val is the
mean of per-row losses ℓ_j on held-out rows, so (P2) is a mean of per-row terms

    s_j = ∇ℓ_j(ŵ₀)ᵀ dŵ/dλ                                                                (P3)

(one jvp for all rows), and its interval is a bootstrap over those rows.

Curvature. (P1) needs H⁻¹ at a minimum. A minibatch-trained network stops near, not at, one: its
Hessian is indefinite there, (H + δI) too for a small δ, and CG does not solve it (ReLU MLPs on
multiview and omics: relative residuals 0.12 to 125 in all 66 settings, experiments/
predict_validation.py). `curvature="gauss-newton"` replaces H by the generalised Gauss–Newton
matrix of L(w, 0) = ℓ(z(w)), z = the model's outputs on the training rows, J = ∂z/∂w:

    G = Jᵀ ∇²_z ℓ(z(ŵ₀)) J                                                                  (P4)

the Hessian without its second-order-in-the-network term Σ_k ∂ℓ/∂z_k ∇²z_k. ℓ is convex in z
(squared error, cross-entropy), so G is positive semi-definite and (G + δI) positive definite for
δ > 0: CG converges. G = H where that term vanishes: a model linear in w, or outputs that fit
(∂ℓ/∂z = 0). Elsewhere the Gauss–Newton slope is (P2) with G for H, the damped linearised response
used for influence functions of networks trained short of a minimum.

Two predictors:

* `predict_probe`: a linear (regression) or multinomial logistic (classification) probe on frozen
  features H2, with K-fold cross-fitting: each fold's probe is fitted on the other folds and
  scored on its own rows, so every row is held out exactly once. It returns the slope (P2) with
  an interval and a verdict, and the probe-KD curve R_val(λ) over a λ grid (probes refitted at
  each λ, vmapped) with λ̂* and the predicted gain R_val(0) − R_val(λ̂*).
* `student_slope`: (P2) for a full Flax student from the engine (params of a no-KD run), with
  held-out validation rows.

What the numbers mean exactly in the Gaussian linear model (tested in tests/test_predict.py): the
cross-fitted slope is unbiased for ∂R/∂λ|₀ = 2k(c − σ²) at the training size of one fold's
probe, n_train = n − n/K, and the cross-fitted curve for R(λ) at n_train (docs/predict.md).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.sparse.linalg import cg

from cch_jax._base import check_int, hi

__all__ = [
    "CG_RESIDUAL_MAX",
    "CURVATURES",
    "VERDICTS",
    "Curve",
    "Prediction",
    "Slope",
    "bootstrap_ci",
    "cg_solved",
    "fold_assignment",
    "gauss_newton_matvec",
    "hessian_matvec",
    "implicit_derivative",
    "lbfgs_minimise",
    "predict_probe",
    "probe_curve",
    "probe_slope",
    "student_slope",
    "student_slopes",
    "verdict_of",
]

VERDICTS = ("kd-helps", "kd-hurts", "inconclusive")
# The curvature that (P1) inverts: the exact Hessian H, or the Gauss–Newton matrix G (P4).
CURVATURES = ("hessian", "gauss-newton")
# Above this relative CG residual ‖(H + δI)x − g‖/‖g‖ (G for H with curvature="gauss-newton")
# the solve has failed (H singular or indefinite, or too few iterations): the slope is not (P2)'s
# and its verdict is "inconclusive".
CG_RESIDUAL_MAX = 1e-3


def cg_solved(residual):
    """residual <= CG_RESIDUAL_MAX, elementwise (NaN: not solved)."""
    return np.asarray(residual) <= CG_RESIDUAL_MAX


DEFAULT_LAMS = {
    "regression": (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    "classification": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
}


# ---------------------------------------------------------------------------------------------
# Per-row losses: the engine's KD losses (cch_jax.losses) before the batch mean.
# ---------------------------------------------------------------------------------------------


def row_losses(out, y, t, lam, task: str, temperature):
    """(label_j, total_j) per row; out (n, 1) or (n, C) student outputs.

    regression:      label_j = (y_j − f_j)²,  total_j = label_j + λ(f_j − t_j)²
    classification:  label_j = CE(y_j, s_j),  total_j = (1 − λ)label_j + λT²KL(softmax(t_j/T) ‖ softmax(s_j/T))
    Their means are `regression_kd_loss` / `classification_kd_loss` (tests/test_predict.py).
    """
    if task == "regression":
        f = out[:, 0]
        label = (y - f) ** 2
        return label, label + lam * (f - t) ** 2
    logp = jax.nn.log_softmax(out, axis=-1)
    label = -jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=-1)[:, 0]
    log_p = jax.nn.log_softmax(t / temperature, axis=-1)
    log_q = jax.nn.log_softmax(out / temperature, axis=-1)
    p = jnp.exp(log_p)
    kl = jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1)
    return label, (1 - lam) * label + lam * temperature**2 * kl


# ---------------------------------------------------------------------------------------------
# The implicit derivative (P1) and the per-row slope terms (P3), for any params pytree.
# ---------------------------------------------------------------------------------------------


def _tree_vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def check_curvature(curvature) -> str:
    """curvature, if it is one of CURVATURES; else a ValueError naming it and the choices."""
    if not isinstance(curvature, str) or curvature not in CURVATURES:
        raise ValueError(
            f"curvature={curvature!r} must be one of {', '.join(map(repr, CURVATURES))}"
        )
    return curvature


def hessian_matvec(loss, params):
    """v ↦ H v, H = ∇²_w L(ŵ₀, 0): the jvp of ∇L(·, 0) at ŵ₀ along v (forward-over-reverse, H
    never formed). loss(params, lam) -> scalar; params ŵ₀ (any pytree)."""
    grad = jax.grad(loss)
    zero = jnp.zeros((), jax.tree.leaves(params)[0].dtype)
    return lambda v: jax.jvp(lambda p: grad(p, zero), (params,), (v,))[1]


def gauss_newton_matvec(outputs, output_loss, params):
    """v ↦ G v = Jᵀ (∇²_z ℓ) J v (P4), G never formed: J v is a jvp of `outputs` at ŵ₀,
    u ↦ ∇²_z ℓ u a jvp of ∇ℓ at z = outputs(ŵ₀) (for the mean cross-entropy over n rows this is
    (diag p_i − p_i p_iᵀ) u_i / n per row, for the mean squared error 2u/n), Jᵀ u a vjp.

    outputs(params) -> z (any array: (n,) or (n, C) outputs on the training rows);
    output_loss(z) -> scalar ℓ(z), the training loss at λ = 0 as a function of the outputs, so
    that L(w, 0) = ℓ(outputs(w)). G is positive semi-definite where ℓ is convex in z.
    """
    z, jvp = jax.linearize(outputs, params)
    vjp = jax.vjp(outputs, params)[1]
    grad_z = jax.grad(output_loss)
    return lambda v: vjp(jax.jvp(grad_z, (z,), (jvp(v),))[1])[0]


def implicit_derivative(
    loss,
    params,
    *,
    damping=0.0,
    maxiter: int = 100,
    tol=1e-10,
    curvature: str = "hessian",
    outputs=None,
    output_loss=None,
):
    """dŵ/dλ|₀ = −(C + δI)⁻¹ ∂λ∇L(ŵ₀, 0) (P1) by conjugate gradients; also CG's relative residual.

    loss(params, lam) -> scalar; params: ŵ₀ (any pytree); damping δ >= 0 (needed where C is
    singular or indefinite: then the result is the damped direction, not (P1)).
    curvature: "hessian" (default), C = H = ∇²L(ŵ₀, 0), `hessian_matvec`; or "gauss-newton",
    C = G = Jᵀ ∇²_z ℓ J (P4), `gauss_newton_matvec`, which needs `outputs` (params -> z) and
    `output_loss` (z -> ℓ(z), with L(w, 0) = ℓ(outputs(w))). G is positive semi-definite for a
    loss convex in z, so with δ > 0 CG converges where H is indefinite (a network short of a
    minimum); G = H for a model linear in w.
    Returns (direction, ‖(C + δI)x − g‖/‖g‖) with x = −direction, g = ∂λ∇L.
    """
    check_curvature(curvature)
    if curvature == "gauss-newton":
        for name, fn in (("outputs", outputs), ("output_loss", output_loss)):
            if not callable(fn):
                raise ValueError(f"{name}={fn!r} must be a function with curvature='gauss-newton'")
        curv = gauss_newton_matvec(outputs, output_loss, params)
    else:
        for name, fn in (("outputs", outputs), ("output_loss", output_loss)):
            if fn is not None:
                raise ValueError(
                    f"{name} is used only with curvature='gauss-newton', not {curvature!r}"
                )
        curv = hessian_matvec(loss, params)
    grad = jax.grad(loss)
    zero = jnp.zeros((), jax.tree.leaves(params)[0].dtype)
    g = jax.jvp(lambda lam: grad(params, lam), (zero,), (jnp.ones_like(zero),))[1]

    def matvec(v):
        return jax.tree.map(lambda a, b: a + damping * b, curv(v), v)

    x, _ = cg(matvec, g, tol=tol, atol=0.0, maxiter=maxiter)
    r = jax.tree.map(jnp.subtract, matvec(x), g)
    residual = jnp.sqrt(_tree_vdot(r, r) / jnp.maximum(_tree_vdot(g, g), 1e-300))
    return jax.tree.map(jnp.negative, x), residual


def slope_terms(val_rows, params, direction):
    """s_j = ∇ℓ_j(ŵ₀)ᵀ dŵ/dλ (P3) for every row at once: one jvp of val_rows(params) -> (m,)."""
    return jax.jvp(val_rows, (params,), (direction,))[1]


# ---------------------------------------------------------------------------------------------
# Intervals and verdicts.
# ---------------------------------------------------------------------------------------------


def bootstrap_ci(values, *, draws: int = 2000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of the row mean: values (n,) or (n, L) → (2,) or (2, L).

    Rows are resampled with replacement `draws` times (in blocks, to bound memory)."""
    v = np.asarray(values, np.float64)
    n = v.shape[0]
    rng = np.random.default_rng([seed, 16])
    block = max(1, min(draws, 2**22 // max(n * (v[0].size if v.ndim > 1 else 1), 1)))
    means = []
    for start in range(0, draws, block):
        idx = rng.integers(0, n, (min(block, draws - start), n))
        means.append(v[idx].mean(axis=1))
    means = np.concatenate(means)
    a = (1 - level) / 2
    return np.quantile(means, [a, 1 - a], axis=0)


def verdict_of(ci) -> str:
    """kd-helps if the interval of dR/dλ lies below 0, kd-hurts above 0, else inconclusive."""
    lo, hi_ = float(ci[0]), float(ci[1])
    if hi_ < 0:
        return "kd-helps"
    if lo > 0:
        return "kd-hurts"
    return "inconclusive"


class Slope(NamedTuple):
    """dR_val/dλ at λ = 0 (P2): negative means a little KD lowers the validation risk.

    slope: the mean of the per-row terms `rows` (n,); ci: (lo, hi) bootstrap over rows at
    `level`; verdict: one of VERDICTS ("inconclusive" whatever the interval when cg_residual >
    CG_RESIDUAL_MAX); fold_slopes (K,): each fold's mean; cg_residual: the largest relative CG
    residual; grad_norm: the largest ‖∇L(ŵ₀, 0)‖ (0 at an exact minimum, where (P1) holds);
    curvature: the matrix CG inverted, one of CURVATURES ("hessian": H, "gauss-newton": G (P4)).
    """

    slope: float
    ci: tuple
    verdict: str
    rows: np.ndarray
    fold_slopes: np.ndarray
    cg_residual: float
    grad_norm: float
    level: float
    curvature: str = "hessian"

    def to_dict(self) -> dict:
        return {
            "slope": self.slope,
            "ci": list(self.ci),
            "level": self.level,
            "verdict": self.verdict,
            "fold_slopes": self.fold_slopes.tolist(),
            "cg_residual": self.cg_residual,
            "cg_converged": self.cg_converged,
            "grad_norm": self.grad_norm,
            "curvature": self.curvature,
        }

    @property
    def cg_converged(self) -> bool:
        """CG solved (P1) to CG_RESIDUAL_MAX: the slope is (P2)'s (at ŵ₀; see grad_norm)."""
        return bool(cg_solved(self.cg_residual))


def _slope(
    rows, fold_slopes, residual, grad_norm, *, draws, seed, level, curvature="hessian"
) -> Slope:
    ci = bootstrap_ci(rows, draws=draws, seed=seed, level=level)
    cg_residual = float(np.max(residual))
    return Slope(
        slope=float(np.mean(rows)),
        ci=(float(ci[0]), float(ci[1])),
        verdict=verdict_of(ci) if cg_solved(cg_residual) else "inconclusive",
        rows=np.asarray(rows),
        fold_slopes=np.asarray(fold_slopes, np.float64),
        cg_residual=cg_residual,
        grad_norm=float(np.max(grad_norm)),
        level=level,
        curvature=curvature,
    )


# ---------------------------------------------------------------------------------------------
# Probes on frozen features, cross-fitted.
# ---------------------------------------------------------------------------------------------


class ProbeData(NamedTuple):
    """Checked probe inputs: h (n, d), y (n,) float targets or int labels, t (n,) or (n, C)."""

    h: jax.Array
    y: jax.Array
    t: jax.Array
    task: str
    out: int  # probe outputs: 1 (regression) or C


def check_probe_inputs(features, labels, teacher, *, standardise: bool = True) -> ProbeData:
    """Validate shapes and values; errors name the argument (features, labels, teacher)."""
    h = np.asarray(features)
    y = np.asarray(labels)
    t = np.asarray(teacher)
    for name, a in (("features", h), ("labels", y), ("teacher", t)):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} of dtype {a.dtype} must hold numbers")
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or h.shape[0] < 1 or h.shape[1] < 1:
        raise ValueError(f"features of shape {h.shape} must be (n, d) with n, d >= 1")
    n = h.shape[0]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"labels of shape {y.shape} must be (n,)=({n},), one per feature row")
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim not in (1, 2) or t.shape[0] != n:
        raise ValueError(
            f"teacher of shape {t.shape} must be ({n},) regression outputs or ({n}, C) logits"
        )
    for name, a in (("features", h), ("labels", y), ("teacher", t)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    dtype = jnp.result_type(float)
    if t.ndim == 1:
        task, out, y = "regression", 1, jnp.asarray(y, dtype)
    else:
        task, out = "classification", t.shape[1]
        if out < 2:
            raise ValueError(f"teacher of shape {t.shape} must have C >= 2 logits")
        if not np.all(y == np.round(y)) or y.min() < 0 or y.max() >= out:
            raise ValueError(
                f"labels (values {y.min():g} to {y.max():g}) must be integers in [0, C) = "
                f"[0, {out}) with teacher logits (n, {out})"
            )
        y = jnp.asarray(y.astype(np.int32))
    if standardise:
        # Constant columns carry nothing once centred, and as zero columns they made the probe's
        # Hessian solve return NaN (measured on CNN features with 16 of 64 dead units): drop them.
        sd = h.std(0)
        varies = sd > 0
        if not varies.any():
            raise ValueError(f"features: all {h.shape[1]} columns are constant (nothing to probe)")
        h = h[:, varies]
        h = (h - h.mean(0)) / sd[varies]
    return ProbeData(jnp.asarray(h, dtype), y, jnp.asarray(t, dtype), task, out)


def fold_assignment(n: int, folds: int, *, labels=None, seed: int = 0) -> np.ndarray:
    """Fold index (n,) in [0, K): a random permutation dealt round-robin, so fold sizes differ by
    at most one; stratified by class when integer `labels` are given."""
    check_int("folds", folds, 2)
    if folds > n:
        raise ValueError(f"folds={folds} must be <= n={n} (every fold needs a row)")
    perm = np.random.default_rng([seed, 61]).permutation(n)
    if labels is not None:
        perm = perm[np.argsort(np.asarray(labels)[perm], kind="stable")]
    fold = np.empty(n, np.int32)
    fold[perm] = np.arange(n) % folds
    return fold


def _n_params(d: int, out: int, intercept: bool) -> int:
    return (d + intercept) * out


def probe_outputs(theta, h, out: int, intercept: bool):
    """f = H W (+ b): theta flat ((d + intercept)·out,) → outputs (n, out)."""
    d = h.shape[1]
    w = theta[: d * out].reshape(d, out)
    f = hi(h, w)
    return f + theta[d * out :] if intercept else f


def probe_loss(h, y, t, weights, *, task, out, intercept, ridge, temperature):
    """L(θ, λ) = Σ_j a_j total_j(f(θ), λ) + α‖W‖²: the weighted KD loss of `row_losses` on the
    rows with weight a_j (a fold's training rows, a_j = 1/n_train) plus the ridge on W."""
    d = h.shape[1]

    def loss(theta, lam):
        f = probe_outputs(theta, h, out, intercept)
        total = row_losses(f, y, t, lam, task, temperature)[1]
        w = theta[: d * out]
        return jnp.sum(weights * total) + ridge * jnp.sum(w * w)

    return loss


def val_rows(h, y, t, *, task, out, intercept, temperature):
    """θ ↦ the per-row task losses ℓ_j (n,): squared error or cross-entropy (R_val's terms)."""
    return lambda theta: row_losses(
        probe_outputs(theta, h, out, intercept), y, t, 0.0, task, temperature
    )[0]


def _float64(fn):
    """Run a probe function with x64 enabled (scoped, as theory's functions). The probe is small
    and its Hessian badly conditioned on real features (near-separable classes, ridge 1e-3): in
    float32, CG stalled at relative residuals of 1e-3 to 1e3 (multiview, `cch predict`), so the
    slope was not (P2)'s. Returns numpy values, never JAX float64 arrays that outlive the scope."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


# L-BFGS stops once ‖∇L‖ is below this (float32, float64): the implicit function theorem (P1)
# holds at a minimum, and the tests compare with the theory in float64.
GRAD_TOL = {False: 1e-5, True: 1e-10}


def fit_probe(loss, theta0, lam, *, task: str, steps: int):
    """argmin_θ L(θ, λ). Regression: L is quadratic, one Newton step from θ0 is exact (dense
    Hessian, (d+1)² entries). Classification: L-BFGS (optax, zoom line search) from θ0 until
    ‖∇L‖ <= GRAD_TOL or `steps` steps."""
    f = lambda th: loss(th, lam)
    if task == "regression":
        return theta0 - jnp.linalg.solve(jax.hessian(f)(theta0), jax.grad(f)(theta0))
    return lbfgs_minimise(f, theta0, steps)


def lbfgs_minimise(f, params, steps: int):
    """argmin of f(params) by L-BFGS (optax, zoom line search) from `params` (any pytree) until
    ‖∇f‖ <= GRAD_TOL (by the float width of the params) or `steps` steps."""
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)
    tol = GRAD_TOL[jnp.dtype(jax.tree.leaves(params)[0].dtype).itemsize == 8]

    def step(carry):
        theta, state, _, i = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(theta, updates), state, optax.tree.norm(grad), i + 1

    def going(carry):
        return (carry[2] > tol) & (carry[3] < steps)

    init = (params, opt.init(params), jnp.asarray(jnp.inf, jax.tree.leaves(params)[0].dtype), 0)
    return jax.lax.while_loop(going, step, init)[0]


class _Setup(NamedTuple):
    data: ProbeData
    fold: np.ndarray  # (n,)
    weights: jax.Array  # (K, n): 1/n_train on the fold's training rows, 0 on its own
    own: jax.Array  # (K, n): 1 on the fold's own (validation) rows


def _setup(features, labels, teacher, *, folds, seed, standardise) -> _Setup:
    data = check_probe_inputs(features, labels, teacher, standardise=standardise)
    n = data.h.shape[0]
    strat = np.asarray(data.y) if data.task == "classification" else None
    fold = fold_assignment(n, folds, labels=strat, seed=seed)
    own = (fold[None, :] == np.arange(folds)[:, None]).astype(np.float64)
    train = 1.0 - own
    dtype = data.h.dtype
    weights = jnp.asarray(train / train.sum(1, keepdims=True), dtype)
    return _Setup(data, fold, weights, jnp.asarray(own, dtype))


def _check_options(ridge, damping, temperature, steps, maxiter):
    for name, value in (("ridge", ridge), ("damping", damping)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value} must be a finite number >= 0")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature} must be a finite number > 0")
    check_int("steps", steps)
    check_int("maxiter", maxiter)


def _pick_own(values, fold):
    """values (K, n, ...) → (n, ...): row j's value from its own fold's probe."""
    return np.asarray(values)[np.asarray(fold), np.arange(len(fold))]


@functools.lru_cache(maxsize=64)
def _slope_program(task, out, intercept, ridge, temperature, damping, maxiter, steps):
    """jit(h, y, t, weights (K, n)) → per-row terms (K, n), CG residual (K,), ‖∇L(ŵ₀)‖ (K,),
    vmapped over folds; one compile per static configuration and input shape."""

    def per_fold(h, y, t, weights):
        kw = dict(task=task, out=out, intercept=intercept, temperature=temperature)
        loss = probe_loss(h, y, t, weights, ridge=ridge, **kw)
        theta0 = jnp.zeros(_n_params(h.shape[1], out, intercept), h.dtype)
        w0 = fit_probe(loss, theta0, 0.0, task=task, steps=steps)
        direction, residual = implicit_derivative(loss, w0, damping=damping, maxiter=maxiter)
        grad_norm = jnp.linalg.norm(jax.grad(loss)(w0, 0.0))
        return slope_terms(val_rows(h, y, t, **kw), w0, direction), residual, grad_norm

    return jax.jit(jax.vmap(per_fold, in_axes=(None, None, None, 0)))


@functools.lru_cache(maxsize=64)
def _curve_program(task, out, intercept, ridge, temperature, steps):
    """jit(h, y, t, weights (K, n), lams (L,)) → per-row losses (K, L, n) of the probes refitted
    at each λ (warm-started at ŵ₀), vmapped over folds and λ."""

    def per_fold(h, y, t, weights, lams):
        kw = dict(task=task, out=out, intercept=intercept, temperature=temperature)
        loss = probe_loss(h, y, t, weights, ridge=ridge, **kw)
        theta0 = jnp.zeros(_n_params(h.shape[1], out, intercept), h.dtype)
        w0 = fit_probe(loss, theta0, 0.0, task=task, steps=steps)
        rows = val_rows(h, y, t, **kw)
        return jax.vmap(lambda lam: rows(fit_probe(loss, w0, lam, task=task, steps=steps)))(lams)

    return jax.jit(jax.vmap(per_fold, in_axes=(None, None, None, 0, None)))


@_float64
def probe_slope(
    features,
    labels,
    teacher,
    *,
    temperature: float = 1.0,
    folds: int = 5,
    ridge: float = 1e-3,
    intercept: bool = True,
    standardise: bool = True,
    damping: float = 0.0,
    maxiter: int | None = None,
    steps: int = 300,
    bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    _setup_cache=None,
) -> Slope:
    """dR_val/dλ|₀ (P2) of a cross-fitted probe on frozen features.

    features (n, d): the no-KD student's representation H2 (held-out rows, ideally);
    labels (n,): regression targets, or integer classes in [0, C); teacher (n,) outputs
    (regression) or (n, C) logits (classification, softened by `temperature`).
    Per fold k: ŵ₀ = argmin of the task loss + ridge·‖W‖² on the other folds; direction (P1) by
    CG (maxiter default: the number of probe parameters, exact in exact arithmetic); terms (P3)
    on fold k's rows. The slope is the mean over all n rows; ci a bootstrap over rows.
    """
    s = _setup_cache or _setup(
        features, labels, teacher, folds=folds, seed=seed, standardise=standardise
    )
    data = s.data
    p = _n_params(data.h.shape[1], data.out, intercept)
    maxiter = p if maxiter is None else maxiter
    _check_options(ridge, damping, temperature, steps, maxiter)
    static = (bool(intercept), float(ridge), float(temperature), float(damping))
    fn = _slope_program(data.task, data.out, *static, int(maxiter), int(steps))
    terms, residual, grad_norm = fn(data.h, data.y, data.t, s.weights)
    rows = _pick_own(terms, s.fold)
    fold_slopes = [rows[s.fold == k].mean() for k in range(len(s.weights))]
    return _slope(rows, fold_slopes, residual, grad_norm, draws=bootstrap, seed=seed, level=level)


class Curve(NamedTuple):
    """The probe-KD curve: cross-fitted validation risk of probes refitted at each λ.

    lams (L,); risk (L,) = R̂_val(λ); gain (L,) = R̂_val(0) − R̂_val(λ) (> 0: KD helps);
    gain_ci (L, 2) bootstrap over rows; lam_star = argmin over the grid; best_gain = gain at
    lam_star, with best_gain_ci (optimistic: λ̂* is chosen on the same rows).
    """

    lams: np.ndarray
    risk: np.ndarray
    gain: np.ndarray
    gain_ci: np.ndarray
    lam_star: float
    best_gain: float
    best_gain_ci: tuple
    level: float

    def to_dict(self) -> dict:
        return {
            "lams": self.lams.tolist(),
            "risk": self.risk.tolist(),
            "gain": self.gain.tolist(),
            "gain_ci": self.gain_ci.tolist(),
            "lam_star": self.lam_star,
            "best_gain": self.best_gain,
            "best_gain_ci": list(self.best_gain_ci),
            "level": self.level,
        }


def check_lams(lams, task: str) -> np.ndarray:
    lams = np.asarray(DEFAULT_LAMS[task] if lams is None else lams, np.float64).ravel()
    top = np.inf if task == "regression" else 1.0
    if lams.size < 1 or not np.all(np.isfinite(lams)) or np.any((lams < 0) | (lams > top)):
        rule = "[0, ∞) (regression)" if task == "regression" else "[0, 1] (classification)"
        raise ValueError(f"lams={lams.tolist()} must be finite values in {rule}")
    return np.unique(np.concatenate([[0.0], lams]))


@_float64
def probe_curve(
    features,
    labels,
    teacher,
    *,
    lams=None,
    temperature: float = 1.0,
    folds: int = 5,
    ridge: float = 1e-3,
    intercept: bool = True,
    standardise: bool = True,
    steps: int = 300,
    bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    _setup_cache=None,
) -> Curve:
    """R̂_val(λ) = mean_j ℓ_j(ŵ_k(j)(λ)) over a λ grid (0 always included), each fold's probe
    refitted at every λ (vmapped over λ, warm-started at ŵ₀), scored on the fold's own rows."""
    s = _setup_cache or _setup(
        features, labels, teacher, folds=folds, seed=seed, standardise=standardise
    )
    data = s.data
    lams = check_lams(lams, data.task)
    _check_options(ridge, 0.0, temperature, steps, 1)
    fn = _curve_program(
        data.task, data.out, bool(intercept), float(ridge), float(temperature), int(steps)
    )
    losses = fn(data.h, data.y, data.t, s.weights, jnp.asarray(lams, data.h.dtype))  # (K, L, n)
    rows = _pick_own(np.moveaxis(np.asarray(losses), 2, 1), s.fold)  # (n, L)
    gains = rows[:, :1] - rows  # per-row ℓ(0) − ℓ(λ)
    risk = rows.mean(0)
    ci = bootstrap_ci(gains, draws=bootstrap, seed=seed, level=level).T  # (L, 2)
    b = int(np.argmin(risk))
    return Curve(
        lams=lams,
        risk=risk,
        gain=gains.mean(0),
        gain_ci=ci,
        lam_star=float(lams[b]),
        best_gain=float(gains[:, b].mean()),
        best_gain_ci=(float(ci[b, 0]), float(ci[b, 1])),
        level=level,
    )


class Prediction(NamedTuple):
    """`predict_probe`'s answer: the slope and the curve, with what they were computed on."""

    task: str
    n: int
    d: int
    folds: int
    temperature: float
    slope: Slope
    curve: Curve | None

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "n": self.n,
            "d": self.d,
            "folds": self.folds,
            "temperature": self.temperature,
            "slope": self.slope.to_dict(),
            "curve": None if self.curve is None else self.curve.to_dict(),
        }


@_float64
def predict_probe(
    features,
    labels,
    teacher,
    *,
    temperature: float = 1.0,
    lams=None,
    curve: bool = True,
    folds: int = 5,
    ridge: float = 1e-3,
    intercept: bool = True,
    standardise: bool = True,
    damping: float = 0.0,
    steps: int = 300,
    bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Prediction:
    """`probe_slope` and (if `curve`) `probe_curve` on the same folds; see those for the inputs.

    standardise: z-score the feature columns (all rows) before fitting, so that `ridge` means the
    same for every feature scale. The task is read from the teacher: (n,) regression, (n, C)
    classification.
    """
    for name, value in (("temperature", temperature), ("ridge", ridge), ("damping", damping)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise TypeError(f"{name}={value!r} must be a number")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must lie in (0, 1)")
    check_int("bootstrap", bootstrap, 100)
    check_int("seed", seed, 0)
    s = _setup(features, labels, teacher, folds=folds, seed=seed, standardise=standardise)
    common = dict(
        temperature=temperature,
        folds=folds,
        ridge=ridge,
        intercept=intercept,
        steps=steps,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        _setup_cache=s,
    )
    if lams is not None:
        check_lams(lams, s.data.task)  # before any fitting
    slope = probe_slope(None, None, None, damping=damping, **common)
    crv = probe_curve(None, None, None, lams=lams, **common) if curve else None
    n, d = s.data.h.shape
    return Prediction(s.data.task, int(n), int(d), folds, float(temperature), slope, crv)


# ---------------------------------------------------------------------------------------------
# A full Flax student from the engine.
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _student_program(
    model, task, temperature, damping, maxiter, curvature="hessian", batched=False
):
    """jit(params, x, y, t, x_val, y_val) → per-row terms (m,), CG residual, ‖∇L(ŵ₀, 0)‖: one
    compile per (module, options) and input shape, whatever the params and data. batched: vmapped
    over a leading teacher axis of t (terms (B, m), residuals (B,)): the B solves share the
    curvature's linearisation and run as one batched CG."""
    from cch_jax.losses import classification_kd_loss, regression_kd_loss

    def run(params, x, y, t, xv, yv):
        def output_loss(out, lam):
            """The engine's full-batch loss as a function of the outputs on the training rows."""
            if task == "regression":
                return regression_kd_loss(out[:, 0], y, t, lam).total
            return classification_kd_loss(out, y, t, lam, temperature).total

        def loss(p, lam):
            return output_loss(model.apply(p, x), lam)

        def rows_fn(p):
            out = model.apply(p, xv)
            tv = jnp.zeros(out.shape[:1] if task == "regression" else out.shape, out.dtype)
            return row_losses(out, yv, tv, 0.0, task, temperature)[0]

        gn = {}
        if curvature == "gauss-newton":
            gn = dict(
                outputs=lambda p: model.apply(p, x),
                output_loss=lambda out: output_loss(out, jnp.zeros((), out.dtype)),
            )
        direction, residual = implicit_derivative(
            loss, params, damping=damping, maxiter=maxiter, curvature=curvature, **gn
        )
        g = jax.grad(loss)(params, 0.0)
        return slope_terms(rows_fn, params, direction), residual, jnp.sqrt(_tree_vdot(g, g))

    return jax.jit(jax.vmap(run, in_axes=(None, None, None, 0, None, None)) if batched else run)


def student_slope(
    model,
    params: Any,
    train,
    val,
    *,
    task: str,
    temperature: float = 1.0,
    damping: float = 1e-3,
    maxiter: int = 100,
    curvature: str = "hessian",
    bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Slope:
    """dR_val/dλ|₀ (P2) of a trained Flax student (a no-KD run's params, e.g. TrainResult.params).

    model: the flax.linen Module (`cch_jax.train.make_student`); train = (x, y, t): the rows it
    was trained on, with the teacher's outputs (n,) or logits (n, C); val = (x, y): held-out rows.
    L(w, λ) is the engine's full-batch loss (`cch_jax.losses`), damped by δ = `damping`. The
    matrix inverted (`curvature`):

    * "hessian" (default): H = ∇²L(ŵ₀, 0), exact HVPs. A network's Hessian may be singular or
      indefinite, and a minibatch run stops near, not at, a minimum (`grad_norm` reports how
      near): there CG does not solve (H + δI)x = g and the verdict is "inconclusive".
    * "gauss-newton": G = Jᵀ ∇²_z ℓ J (P4), z = model.apply(params, x) the outputs on the
      training rows (logits, or the (n, 1) output), ℓ(z) = L at λ = 0 as a function of z. G is
      positive semi-definite, so with δ > 0 CG converges: the slope with G for H, which is (P2)
      for a model linear in its parameters.

    R_val = mean validation loss (squared error or cross-entropy). The interval is a bootstrap
    over validation rows, conditional on the trained student. The result records `curvature`.
    """
    return _student_slopes(
        model,
        params,
        train,
        val,
        task,
        temperature,
        damping,
        maxiter,
        curvature,
        False,
        dict(draws=bootstrap, seed=seed, level=level),
    )[0]


def student_slopes(
    model,
    params: Any,
    train,
    val,
    *,
    task: str,
    temperature: float = 1.0,
    damping: float = 1e-3,
    maxiter: int = 100,
    curvature: str = "hessian",
    bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[Slope]:
    """`student_slope` for B teachers of one student at once: train = (x, y, ts) with ts (B, n) or
    (B, n, C), one teacher per leading index; returns B Slopes, the same as B calls up to
    where CG stops (the batched matvecs round differently), in one batched CG: the curvature does
    not depend on the teacher (L(w, 0) is the task loss alone), so the B solves share its
    linearisation and each matvec is one matrix product instead of B (measured: 1.3x faster
    than 10 calls for 10 teachers of a 14k-parameter multiview MLP, 500 iterations, 2-core CPU)."""
    return _student_slopes(
        model,
        params,
        train,
        val,
        task,
        temperature,
        damping,
        maxiter,
        curvature,
        True,
        dict(draws=bootstrap, seed=seed, level=level),
    )


def _student_slopes(
    model, params, train, val, task, temperature, damping, maxiter, curvature, batched, ci
) -> list[Slope]:
    if task not in ("regression", "classification"):
        raise ValueError(f"task={task!r} must be 'regression' or 'classification'")
    check_int("maxiter", maxiter)
    if not (np.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping={damping} must be a finite number >= 0")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature} must be a finite number > 0")
    check_curvature(curvature)
    y, t = train[1], train[2]
    if batched and np.ndim(t) != np.ndim(y) + (task == "classification") + 1:
        raise ValueError(
            f"teacher outputs of shape {np.shape(t)} must have a leading teacher axis before "
            f"the {'(n, C)' if task == 'classification' else '(n,)'} outputs of each teacher"
        )
    run = _student_program(
        model, task, float(temperature), float(damping), int(maxiter), curvature, batched
    )
    arrays = (*(jnp.asarray(a) for a in train), *(jnp.asarray(a) for a in val))
    terms, residual, grad_norm = run(params, *arrays)
    terms, residual = np.asarray(terms), np.asarray(residual)
    if not batched:
        terms, residual, grad_norm = terms[None], residual[None], np.asarray(grad_norm)[None]
    return [
        _slope(terms[b], [terms[b].mean()], residual[b], grad_norm[b], curvature=curvature, **ci)
        for b in range(terms.shape[0])
    ]
