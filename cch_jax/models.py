"""Flax students. Each maps a batch (B, ...) to outputs (B, out) and exposes its penultimate
features H (the representation later MI experiments measure) through `features`.

    LinearStudent   f(x) = wᵀx (+ b)          — the theory's student (no bias: zero-mean model)
    MLPStudent      f(x) = W_L h(x),  h = relu MLP of `hidden` widths
    CNNStudent      f(x) = W h(x),    h = conv-pool ×len(channels) → dense(hidden) → relu

All are flax.linen modules: `module.init(key, x)`, `module.apply(params, x)`,
`module.apply(params, x, method="features")`. Batching over students is done by vmap.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


def _flatten(x):
    """(B, ...) → (B, prod(...)): the dense students accept any input shape."""
    return x.reshape(x.shape[0], -1)


class LinearStudent(nn.Module):
    """f(x) = xᵀW (+ b), W of shape (prod(input dims), out). Features H = the flattened input.

    precision: of the product xᵀW. "highest" (default): true float32. NVIDIA GPUs compute float32
    products in TF32 by default (a 10-bit mantissa, ~1e-3 relative), too coarse to compare with the
    theory: at that default the closed-form ŵ(λ) came out 3e-3 (relative) off float32 students.
    So every product that is compared with the theory runs at "highest": this one, the Gaussian
    sampler, the teacher t = x1 w1, the fast path's moments, the exact risk and ŵ(λ)
    (`cch_jax._base.hi`, `theory._x64.hi`; tests/test_train.py inspects a whole run).
    None: XLA's default (TF32 on NVIDIA GPUs; the same as "highest" on CPU): faster on a GPU, for
    scans that do not need theory-grade agreement (`model_kwargs={"precision": None}`).
    """

    out: int = 1
    use_bias: bool = False
    precision: str | None = "highest"

    def setup(self):
        self.head = nn.Dense(
            self.out, use_bias=self.use_bias, precision=self.precision, name="head"
        )

    def features(self, x):
        return _flatten(x)

    def __call__(self, x):
        return self.head(self.features(x))


class MLPStudent(nn.Module):
    """f(x) = W_out h(x) with h = relu(W_k … relu(W_1 x)); features H = h(x), shape (B, hidden[-1])."""

    hidden: Sequence[int] = (64, 64)
    out: int = 1

    def setup(self):
        self.layers = [nn.Dense(w, name=f"hidden_{i}") for i, w in enumerate(self.hidden)]
        self.head = nn.Dense(self.out, name="head")

    def features(self, x):
        h = _flatten(x)
        for layer in self.layers:
            h = nn.relu(layer(h))
        return h

    def __call__(self, x):
        return self.head(self.features(x))


class CNNStudent(nn.Module):
    """A small CNN for (B, 28, 28, C) images (C = 1 or 3; (B, 28, 28) is read as C = 1).

    h(x) = relu(dense_hidden(flatten(pool(relu(conv_k(… pool(relu(conv_1 x))))))))
    f(x) = dense_out(h(x)).  Features H = h(x), shape (B, hidden).
    """

    channels: Sequence[int] = (16, 32)
    hidden: int = 64
    out: int = 10

    def setup(self):
        self.convs = [
            nn.Conv(c, kernel_size=(3, 3), padding="SAME", name=f"conv_{i}")
            for i, c in enumerate(self.channels)
        ]
        self.dense = nn.Dense(self.hidden, name="dense")
        self.head = nn.Dense(self.out, name="head")

    def features(self, x):
        h = x[..., None] if x.ndim == 3 else x
        for conv in self.convs:
            h = nn.avg_pool(nn.relu(conv(h)), window_shape=(2, 2), strides=(2, 2))
        return nn.relu(self.dense(_flatten(h)))

    def __call__(self, x):
        return self.head(self.features(x))


MODELS = {"linear": LinearStudent, "mlp": MLPStudent, "cnn": CNNStudent}


def make_model(kind, **kwargs) -> nn.Module:
    """A student from its kind ('linear', 'mlp', 'cnn') and keyword fields, or a module as is."""
    if isinstance(kind, nn.Module):
        if kwargs:
            raise ValueError(f"model_kwargs={kwargs} given with a module instance; set its fields")
        return kind
    if kind not in MODELS:
        raise ValueError(f"model={kind!r} must be one of {sorted(MODELS)} or a flax.linen Module")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return MODELS[kind](**fields)
    except TypeError as err:
        raise TypeError(f"model_kwargs={kwargs} do not fit model={kind!r}: {err}") from None


def linear_weights(params):
    """The weight vector w (..., p) of a LinearStudent with out=1 (its Dense kernel (..., p, 1));
    leading axes are runs of a scan."""
    return params["params"]["head"]["kernel"][..., 0]


def linear_bias(params):
    """The bias b (...) of a LinearStudent with out=1, 0 without bias."""
    head = params["params"]["head"]
    if "bias" in head:
        return head["bias"][..., 0]
    return jnp.zeros(head["kernel"].shape[:-2], head["kernel"].dtype)
