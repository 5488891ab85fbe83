"""Knowledge-distillation losses. Each returns `LossParts(total, label, kd)`.

Regression (λ ∈ [0, ∞), the paper's weight; batch means instead of sums, same minimiser):

    label = mean_i (y_i − f_i)²,   kd = mean_i (f_i − t_i)²,   total = label + λ·kd

Classification (λ ∈ [0, 1], temperature T > 0; batch-mean KL):

    label = mean_i CE(y_i, softmax(s_i))
    kd    = mean_i KL(softmax(t_i/T) ‖ softmax(s_i/T))
    total = (1 − λ)·label + λ·T²·kd

Why T²: ∂kd/∂s = (softmax(s/T) − softmax(t/T))/T, and for large T the difference of the softened
distributions is itself O(1/T), so ∂kd/∂s = O(1/T²). The T² factor keeps the soft term's gradient
on the scale of the hard term's as T varies (Hinton et al., 2015).

The regression loss of a linear student f = Xw + b depends on its training set only through
moments (`LinearStats`): `regression_kd_loss_from_stats` is the same loss at O(p²) per step, the
engine's fast path (docs/engine.md).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from cch_jax._base import hi


class LossParts(NamedTuple):
    """The total loss and its two unweighted parts (scalars)."""

    total: jax.Array
    label: jax.Array
    kd: jax.Array


def mse(pred, target):
    """mean_i (pred_i − target_i)²; pred, target of shape (B,)."""
    return jnp.mean((pred - target) ** 2)


def regression_kd_loss(pred, y, teacher, lam) -> LossParts:
    """total = mean (y − f)² + λ·mean (f − t)².

    Args:
      pred: student outputs f, shape (B,).
      y: labels, shape (B,).
      teacher: teacher outputs t (e.g. t = w1ᵀx1), shape (B,).
      lam: λ ≥ 0 (scalar; traced in scans).
    """
    label, kd = mse(pred, y), mse(pred, teacher)
    return LossParts(total=label + lam * kd, label=label, kd=kd)


def cross_entropy(logits, labels):
    """mean_i −log softmax(s_i)[y_i]; logits (B, C), integer labels (B,)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1))


def kl_divergence(teacher_logits, student_logits, temperature):
    """mean_i KL(softmax(t_i/T) ‖ softmax(s_i/T)) = mean_i Σ_c p_c (log p_c − log q_c).

    Terms with p_c = 0 contribute 0 (the limit p log p → 0), so one-hot-like teachers are safe.
    """
    log_p = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    log_q = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    p = jnp.exp(log_p)
    return jnp.mean(jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1))


def classification_kd_loss(logits, labels, teacher_logits, lam, temperature) -> LossParts:
    """total = (1 − λ)·CE(y, s) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T)), batch means.

    Args:
      logits: student logits s, shape (B, C).
      labels: integer classes y, shape (B,).
      teacher_logits: teacher logits t, shape (B, C).
      lam: λ ∈ [0, 1] (scalar; traced in scans).
      temperature: T > 0 (scalar; traced in scans).
    """
    label = cross_entropy(logits, labels)
    kd = kl_divergence(teacher_logits, logits, temperature)
    total = (1 - lam) * label + lam * temperature**2 * kd
    return LossParts(total=total, label=label, kd=kd)


def accuracy(logits, labels):
    """Fraction of argmax_c s_ic == y_i; logits (B, C), labels (B,)."""
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


class LinearStats(NamedTuple):
    """The moments of a training set x (n, p), y (n,), t (n,) that fix a linear student's KD loss.

    xx = XᵀX/n (p, p); xy = Xᵀy/n, xt = Xᵀt/n, mx = x̄ (p,); yy = mean y², tt = mean t², my = ȳ,
    mt = t̄ (scalars). With f = Xw + b:  mean (y − f)² = yy − 2(wᵀxy + b·my) + q  and
    mean (f − t)² = tt − 2(wᵀxt + b·mt) + q,  q = mean f² = wᵀxx w + 2b·wᵀmx + b².
    """

    xx: jax.Array
    xy: jax.Array
    xt: jax.Array
    mx: jax.Array
    yy: jax.Array
    tt: jax.Array
    my: jax.Array
    mt: jax.Array


def linear_stats(x, y, t) -> LinearStats:
    """One O(n·p²) pass over x (n, ...) (flattened to (n, p) like LinearStudent), y (n,), t (n,)."""
    x = x.reshape(x.shape[0], -1)
    n = x.shape[0]
    return LinearStats(
        xx=hi(x.T, x) / n,
        xy=hi(x.T, y) / n,
        xt=hi(x.T, t) / n,
        mx=jnp.mean(x, axis=0),
        yy=jnp.mean(y * y),
        tt=jnp.mean(t * t),
        my=jnp.mean(y),
        mt=jnp.mean(t),
    )


def regression_kd_loss_from_stats(params, stats: LinearStats, lam) -> LossParts:
    """`regression_kd_loss` of a LinearStudent (out = 1) on the training set behind `stats`.

    params: the student's variables (kernel (p, 1), optional bias (1,)). O(p²): no sample is read.
    Equal to the per-sample loss up to rounding; the rounding is absolute, of order
    eps·(mean y² + mean t² + mean f²), which matters only when a loss part is many orders of
    magnitude below those (float32: eps ≈ 6e-8).
    """
    head = params["params"]["head"]
    w = head["kernel"][:, 0]
    q = hi(w, hi(stats.xx, w))  # mean f² without bias
    fy, ft = hi(w, stats.xy), hi(w, stats.xt)  # mean f·y, mean f·t without bias
    if "bias" in head:
        b = head["bias"][0]
        q = q + 2 * b * hi(w, stats.mx) + b * b
        fy, ft = fy + b * stats.my, ft + b * stats.mt
    label = stats.yy - 2 * fy + q
    kd = stats.tt - 2 * ft + q
    return LossParts(total=label + lam * kd, label=label, kd=kd)
