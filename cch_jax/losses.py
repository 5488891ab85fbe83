"""Knowledge-distillation losses (design.md §4). Each returns `LossParts(total, label, kd)`.

Regression (λ ∈ [0, ∞), the paper's weight; batch means instead of sums, same minimiser):

    label = mean_i (y_i − f_i)²,   kd = mean_i (f_i − t_i)²,   total = label + λ·kd

Classification (λ ∈ [0, 1], temperature T > 0; batch-mean KL):

    label = mean_i CE(y_i, softmax(s_i))
    kd    = mean_i KL(softmax(t_i/T) ‖ softmax(s_i/T))
    total = (1 − λ)·label + λ·T²·kd

Why T²: ∂kd/∂s = (softmax(s/T) − softmax(t/T))/T, and for large T the difference of the softened
distributions is itself O(1/T), so ∂kd/∂s = O(1/T²). The T² factor keeps the soft term's gradient
on the scale of the hard term's as T varies (Hinton et al., 2015).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


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
