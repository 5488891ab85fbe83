"""make_train: gradient-trained linear students agree with the closed form and the exact theory;
vmapped runs equal single runs; classification on fixed arrays; divergence; config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from cch_jax.models import CNNStudent, LinearStudent, MLPStudent, linear_weights, make_model
from cch_jax.results import seed_stats
from cch_jax.scan import run_scan
from cch_jax.train import (
    ArrayData,
    GaussianSource,
    TrainConfig,
    make_train,
    training_moments,
    training_set,
)

LAMS = np.array([0.0, 0.5, 2.0])
N_SEEDS = 1000  # ≥ 500 training sets per λ for the 4-SEM comparison


@pytest.fixture(scope="module")
def source():
    model = theory.random_model(jax.random.key(1), 3, 4)
    return GaussianSource(model, 20)


@pytest.fixture(scope="module")
def trained(source):
    """N_SEEDS linear students per λ, full-batch Adam with a cosine-decayed step, float64.

    1000 steps leave every student within ~4e-12 of its ŵ(λ) (500 steps: ~1e-3), far inside the
    1e-4 checked below; 2000 steps bought nothing but time."""
    config = TrainConfig(data=source, steps=1000, eval_every=250, schedule="cosine")
    return run_scan(config, LAMS, [1.0], np.arange(N_SEEDS), learning_rates=[0.1]).sel(
        temperature=1.0, learning_rate=0.1
    )


def test_students_reach_their_closed_form_weights(source, trained):
    # Each student minimised its own training set's loss: ŵ(λ) = (X2ᵀX2)⁻¹X2ᵀ(y + λt)/(1+λ).
    # (The source draws each set's moments directly: ŵ(λ) from those moments.)
    @jax.jit
    def closed_form(lam):
        stats = jax.vmap(lambda s: training_moments(source, None, jax.random.key(s)))(
            jnp.arange(N_SEEDS)
        )
        solve = lambda xx, xy, xt: theory.kd_weights_from_moments(xx, xy, xt, lam)
        return jax.vmap(solve)(stats.xx, stats.xy, stats.xt)

    for i, lam in enumerate(LAMS):
        w_hat = closed_form(lam)
        w = jax.vmap(linear_weights)(jax.tree.map(lambda p, i=i: p[i], trained.params))
        rel = np.linalg.norm(w - w_hat, axis=1) / np.linalg.norm(w_hat, axis=1)
        assert rel.max() < 1e-4, (lam, rel.max())


def test_test_metric_is_the_exact_population_risk(source, trained):
    # R(w) = σy² − 2wᵀΣ2y + wᵀΣ22w, computed here independently in numpy from Σ.
    cov = np.asarray(source.model.cov)
    x2 = source.model.block_index("x2")
    w = np.asarray(jax.vmap(jax.vmap(linear_weights))(trained.params))  # (lam, seed, p2)
    risk = cov[-1, -1] - 2 * w @ cov[x2, -1] + np.einsum("lsi,ij,lsj->ls", w, cov[x2, x2], w)
    np.testing.assert_allclose(trained.final_test, risk, rtol=1e-10)


def test_seed_mean_risk_matches_the_theory_within_4_sem(source, trained):
    assert not np.any(trained.diverged)
    mean, sem, count = seed_stats(trained.final_test, trained.diverged, axis=1)
    expected = np.asarray(theory.expected_risk(source.model, source.w1, LAMS, source.n))
    assert np.all(count == N_SEEDS)
    z = (mean - expected) / sem
    assert np.all(np.abs(z) < 4), z
    # and the KD effect being tested is real: the risks differ by many SEMs across λ
    assert np.ptp(expected) > 10 * sem.max()


def test_vmapped_runs_equal_single_runs(source):
    config = TrainConfig(data=source, steps=100, eval_every=20, schedule="cosine")
    lams, lrs, seeds = [0.0, 1.5], [0.05, 0.2], [3, 11]
    scan = run_scan(config, lams, [1.0], seeds, learning_rates=lrs, chunk_size=3)
    single = jax.jit(make_train(config))
    for i, lam in enumerate(lams):
        for j, lr in enumerate(lrs):
            for k, seed in enumerate(seeds):
                one = single(None, jax.random.key(seed), lam, 1.0, lr)
                got = jax.tree.map(lambda x, i=i, j=j, k=k: x[i, 0, j, k], scan.params)
                np.testing.assert_allclose(linear_weights(got), linear_weights(one.params), 1e-5)
                for name in ("total", "label", "kd", "test"):
                    np.testing.assert_allclose(
                        getattr(scan.metrics, name)[i, 0, j, k],
                        getattr(one.metrics, name),
                        rtol=1e-5,
                    )


def test_metric_trajectory_shapes_and_loss_parts(source):
    config = TrainConfig(data=source, steps=60, eval_every=20, optimizer="sgd")
    res = jax.jit(make_train(config))(None, jax.random.key(0), 0.5, 1.0, 0.01)
    assert res.metrics.total.shape == (3,) and config.eval_steps.tolist() == [20, 40, 60]
    np.testing.assert_allclose(res.metrics.total, res.metrics.label + 0.5 * res.metrics.kd)
    assert res.metrics.total[-1] < res.metrics.total[0]  # it learns
    assert not bool(res.diverged)


def test_divergence_is_flagged_not_averaged(source):
    config = TrainConfig(data=source, steps=200, eval_every=100, optimizer="sgd")
    scan = run_scan(config, [0.0], [1.0], np.arange(4), learning_rates=[0.01, 100.0])
    div = scan.diverged[0, 0]  # (lr, seed)
    assert not div[0].any() and div[1].all()
    assert not np.all(np.isfinite(scan.final_test[0, 0, 1]))
    mean, _, count = seed_stats(scan.final_test, scan.diverged, axis=3)
    assert count[0, 0].tolist() == [4, 0] and np.isfinite(mean[0, 0, 0])
    assert "diverged: 4" in scan.summary() and "EXCLUDED" in scan.summary()


def test_minibatch_mlp_on_gaussian_data(source):
    # Non-linear student: the test metric is the MSE on a fixed Gaussian test sample.
    config = TrainConfig(
        data=source,
        model="mlp",
        model_kwargs={"hidden": [8]},
        steps=200,
        eval_every=100,
        batch_size=8,
    )
    res = jax.jit(make_train(config))(None, jax.random.key(0), 1.0, 1.0, 0.01)
    assert res.metrics.test.shape == (2,) and np.all(np.isfinite(res.metrics.test))
    # The metric is the MSE of the final network on the documented fixed test sample
    # (n_test points drawn with key test_seed), recomputed here from the returned parameters.
    from cch_jax.data.gaussian import sample_gaussian

    _, x_test, y_test = sample_gaussian(
        source.model, source.n_test, key=jax.random.key(source.test_seed)
    )
    pred = make_model("mlp", hidden=[8], out=1).apply(res.params, x_test)[:, 0]
    np.testing.assert_allclose(res.metrics.test[-1], np.mean((pred - y_test) ** 2), rtol=1e-10)
    # No predictor beats the Bayes risk σ² = Var(y | x2) beyond the test sample's noise.
    sigma2 = float(theory.population(source.model).sigma2)
    assert res.metrics.test[-1] > sigma2 * (1 - 4 * np.sqrt(2 / source.n_test))


def _blobs(n, seed, shape=(28, 28, 1), classes=3):
    """Images whose class is a bright band in one of `classes` row positions, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = 0.3 * rng.normal(size=(n, *shape))
    for i, c in enumerate(y):
        x[i, 4 + 8 * c : 10 + 8 * c] += 2.0
    return x, y.astype(np.int32), 3.0 * np.eye(classes)[y]


def test_classification_cnn_on_fixed_arrays():
    x, y, t = _blobs(96, 0, shape=(28, 28, 3))
    xt, yt, _ = _blobs(60, 1, shape=(28, 28, 3))
    data = ArrayData(x, y, t, xt, yt)
    config = TrainConfig(
        task="classification",
        model="cnn",
        model_kwargs={"channels": [4], "hidden": 8},
        steps=40,
        eval_every=20,
        batch_size=32,
    )
    train = jax.jit(make_train(config, data))
    res = train(data, jax.random.key(0), 0.5, 2.0, 0.01)
    assert res.metrics.test.shape == (2,)
    assert res.metrics.test[-1] > 0.9  # three easy classes: chance is 1/3
    assert res.params["params"]["head"]["kernel"].shape == (8, 3)  # out inferred = C
    np.testing.assert_allclose(
        res.metrics.total, 0.5 * res.metrics.label + 0.5 * 4.0 * res.metrics.kd, rtol=1e-12
    )


@pytest.mark.parametrize(
    ("module", "x", "features"),
    [  # input shapes, not arrays: building an array at collection would start JAX (mutmut forks)
        (LinearStudent(), (5, 3), (5, 3)),
        (MLPStudent(hidden=(7, 6)), (5, 2, 2), (5, 6)),
        (CNNStudent(channels=(2,), hidden=9), (5, 28, 28), (5, 9)),
    ],
)
def test_students_expose_penultimate_features(module, x, features):
    x = jnp.ones(x)

    @jax.jit
    def check(x):
        params = module.init(jax.random.key(0), x)
        h = module.apply(params, x, method="features")
        head = params["params"]["head"]
        return h, module.apply(params, x), h @ head["kernel"] + head.get("bias", 0.0)

    h, out, expected = check(x)
    assert h.shape == features
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# --- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"task": "ranking"}, ValueError, "task='ranking'"),
        ({"optimizer": "lion"}, ValueError, "optimizer='lion'"),
        ({"steps": 0}, ValueError, "steps=0"),
        ({"steps": 10, "eval_every": 3}, ValueError, "eval_every=3 must divide steps=10"),
        ({"batch_size": 2.5}, TypeError, "batch_size=2.5"),
        ({"data": "mnist"}, TypeError, "data=str"),
    ],
)
def test_config_errors_name_argument_and_rule(kwargs, err, match):
    with pytest.raises(err, match=match):
        TrainConfig(**kwargs)


def test_data_errors(source):
    with pytest.raises(ValueError, match="only supports 'regression'"):
        TrainConfig(task="classification", data=source)
    with pytest.raises(ValueError, match=r"w1 of shape \(2,\) must have shape \(p1,\)=\(3,\)"):
        GaussianSource(source.model, 20, w1=np.ones(2))
    with pytest.raises(ValueError, match="batch_size=50 must be <= n=20"):
        make_train(TrainConfig(data=source, batch_size=50))
    x = np.zeros((10, 4))
    bad = ArrayData(x, np.zeros(9, int), np.zeros((10, 3)), x, np.zeros(10, int))
    with pytest.raises(ValueError, match=r"y_train of shape \(9,\) must have n=10 rows"):
        make_train(TrainConfig(task="classification"), bad)
    with pytest.raises(ValueError, match="data=None"):
        make_train(TrainConfig())
    with pytest.raises(ValueError, match="model='resnet'"):
        make_model("resnet")


def _dot_precisions(fn, *args) -> list:
    """The `precision` of every dot_general in fn's jaxpr, nested jaxprs (scan, solve) included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("fast_path", [True, False])
def test_linear_runs_use_full_float32_products(source, fast_path):
    """Every product of a linear Gaussian run and of its closed-form reference is at precision
    HIGHEST (why: the LinearStudent docstring)."""
    config = TrainConfig(data=source, steps=4, eval_every=2, fast_path=fast_path)
    args = (None, jax.random.key(0), 0.5, 1.0, 0.1)
    precisions = _dot_precisions(make_train(config), *args)
    assert precisions and all(p == HIGHEST for p in precisions), precisions
    x2, y, t = training_set(source, None, jax.random.key(0))
    precisions = _dot_precisions(lambda *a: theory.kd_weights(*a, 0.5), x2, y, t)
    assert precisions and all(p == HIGHEST for p in precisions), precisions


def test_linear_student_precision_option():
    """model_kwargs={"precision": None} gives XLA's default products (TF32 on GPUs, for speed);
    on a CPU the numbers are the same as at "highest"."""
    x = jax.random.normal(jax.random.key(0), (50, 6))
    fast, exact = LinearStudent(precision=None), LinearStudent()
    params = exact.init(jax.random.key(1), x)
    assert _dot_precisions(lambda p: fast.apply(p, x), params) == [None]
    assert _dot_precisions(lambda p: exact.apply(p, x), params) == [HIGHEST]
    if jax.devices()[0].platform == "cpu":
        np.testing.assert_array_equal(fast.apply(params, x), exact.apply(params, x))
