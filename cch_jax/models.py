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


def patches3x3(x):
    """(B, H, W, C) → (B, H, W, 9·C): the 3×3 "SAME" neighbourhoods, ordered (dy, dx, c) like a
    (3, 3, C, C') kernel flattened to (9·C, C'). Shifted slices of a padded copy: pure data
    movement, so a vmap over students stays a batch of matmuls (vmapped lax.conv becomes a grouped
    convolution, slow on CPU)."""
    h, w = x.shape[-3], x.shape[-2]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = [xp[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    return jnp.concatenate(cols, axis=-1)


class PatchConv(nn.Module):
    """A 3×3 "SAME" convolution as patches3x3(x) @ kernel.reshape(9·C, C') + b. The parameters
    (kernel (3, 3, C, C'), bias (C',)), their names and initialisers are nn.Conv's, so either
    implementation runs the other's parameters."""

    features: int

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return patches3x3(x) @ kernel.reshape(9 * c, self.features) + bias


def _pool2(x):
    """2×2 average pooling, stride 2, dropping an odd last row/column (nn.avg_pool, "VALID")."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class CNNStudent(nn.Module):
    """A small CNN for (B, 28, 28, C) images (C = 1 or 3; (B, 28, 28) is read as C = 1).

    h(x) = relu(dense_hidden(flatten(pool(relu(conv_k(… pool(relu(conv_1 x))))))))
    f(x) = dense_out(h(x)).  Features H = h(x), shape (B, hidden).

    conv: "patches" (default) computes each 3×3 convolution as a matmul on shifted slices
    (`PatchConv`); "lax" uses nn.Conv. Same function, same parameters. Measured on a 2-core CPU
    (BENCHMARKS.md, CNN students): "patches" is faster for one student and keeps vmapped students
    a batch of matmuls, where a vmapped nn.Conv becomes a slow grouped convolution.
    """

    channels: Sequence[int] = (16, 32)
    hidden: int = 64
    out: int = 10
    conv: str = "patches"

    def setup(self):
        if self.conv not in ("patches", "lax"):
            raise ValueError(f"conv={self.conv!r} must be 'patches' or 'lax'")
        make = PatchConv if self.conv == "patches" else _lax_conv
        self.convs = [make(c, name=f"conv_{i}") for i, c in enumerate(self.channels)]
        self.dense = nn.Dense(self.hidden, name="dense")
        self.head = nn.Dense(self.out, name="head")

    def features(self, x):
        h = x[..., None] if x.ndim == 3 else x
        for conv in self.convs:
            h = _pool2(nn.relu(conv(h)))
        return nn.relu(self.dense(_flatten(h)))

    def __call__(self, x):
        return self.head(self.features(x))


def _lax_conv(features, name):
    return nn.Conv(features, kernel_size=(3, 3), padding="SAME", name=name)


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
