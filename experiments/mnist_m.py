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
steps on 50 000 images); `--quick` runs on a CPU in minutes; `--medium` (MEDIUM) is the largest
configuration that finishes within an hour on a 2-core CPU, with teachers that reach ≥ 98 % on MNIST.

Two runners train the networks (`runner` in the config):
  * "vmap": seeds × grid vmapped under one jit per σ (GPU-sized batches of students);
  * "jobs": one jitted single-student run per job, `threads` jobs at a time, each job's outputs
    saved as it finishes under <results>/jobs/, so an interrupted run resumes where it stopped
    (runs, not σ levels, are the unit of progress). On the 2-core CPU the two are within 20 % of
    each other per student-step (BENCHMARKS.md, "CNN students, 2026-12-01": 15 vmapped students
    5.9 ms, two threads 6.9 ms); one student alone leaves a core idle (9.8 ms).
Both give the same numbers for the same config up to float reassociation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from cch_jax.models import make_model
from cch_jax.serialize import jsonable
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
    check_arrays,
    check_features,
    check_row,
    check_setting,
    check_tallies,
    check_tally_line,
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
    # The bias-aware check (cch_jax.mi.check) on the held-out features (the mi_n test images) of
    # seed `check_seed`: all hidden units ("full") and PCA to `pca_check` dims ("pca").
    check_seed=0,
    pca_check=8,
    check_families={"full": ("gc", "knn"), "pca": ("gc", "knn")},
    teacher_steps=None,  # None: `steps`
    reference_steps=0,  # > 0: also train `reference_seeds` no-KD students this long (jobs runner)
    reference_seeds=0,
    runner="vmap",  # or "jobs" (module docstring)
    threads=2,
    compiler_options=None,  # XLA options of every jitted program (_real.COMPILE_FAST)
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
# ≤ 60 min on a 2-core CPU (docs/results.md has the measured time): teachers trained longer than
# students (a σ = 0 teacher at 2000 steps reaches ≥ 98 %), students at 600 steps, and a reference
# no-KD student at `reference_steps` to show how far the architecture goes with more training.
MEDIUM = dict(
    sigmas=(0.0, 1.0, 2.0, 4.0, 6.0, 8.0),
    seeds=5,
    lams=(0.1, 0.3, 0.5, 0.7, 0.9),
    temperatures=(1.0, 2.0, 4.0),
    n_train=50_000,
    n_test=10_000,
    channels=(8, 16),
    hidden=64,
    steps=600,
    teacher_steps=2000,
    reference_steps=4000,
    reference_seeds=2,
    batch_size=64,
    learning_rate=3e-3,
    runner="jobs",
    threads=2,
)


def cnn_config(cfg, steps=None) -> TrainConfig:
    steps = int(cfg["steps"] if steps is None else steps)
    return TrainConfig(
        task="classification",
        model="cnn",
        model_kwargs={"channels": tuple(cfg["channels"]), "hidden": int(cfg["hidden"]), "out": 10},
        steps=steps,
        eval_every=steps,
        optimizer="adam",
        schedule="cosine",
        batch_size=cfg["batch_size"],
    )


def make_runners(
    config: TrainConfig, template: ArrayData, learning_rate: float, compiler_options=None
):
    """(single, kd, features, logits), jitted; the images are shared by all runs (not copied).

    single(data, keys): λ = 0 runs, one per key. kd(data, t_logits (S, n, C), keys (S,), lams,
    temps (G,)) → results with axes (S, G). features/logits(params with a run axis, x) → (R, m, ·).
    compiler_options: XLA options of each jit (see _real.COMPILE_FAST).
    """
    train = make_train(config, template)
    lr = learning_rate
    jit = lambda f: jax.jit(f, compiler_options=compiler_options)  # noqa: E731
    single = jit(jax.vmap(lambda d, key: train(d, key, 0.0, 1.0, lr), in_axes=(None, 0)))

    def per_seed(d, t, key, lams, temps):
        dt = d._replace(teacher_train=t)
        return jax.vmap(lambda lam, tau: train(dt, key, lam, tau, lr))(lams, temps)

    kd = jit(jax.vmap(per_seed, in_axes=(None, 0, 0, None, None)))
    model = make_model(config.model, **config.model_kwargs)
    features = jit(jax.vmap(lambda p, x: model.apply(p, x, method="features"), (0, None)))
    logits = jit(jax.vmap(lambda p, x: model.apply(p, x), (0, None)))
    return single, kd, features, logits


def _batched(fn, params, x, size=2000):
    """fn(params, x) over row blocks of x (bounded memory), concatenated on axis 1."""
    return np.concatenate(
        [np.asarray(fn(params, x[i : i + size])) for i in range(0, len(x), size)], 1
    )


def _features(runners, params, x_fit, x_te, n_fit, n_mi):
    """(features on x_fit[:n_fit], features on x_te[:n_mi], logits on x_te[:n_mi]), run axis first."""
    _, _, feats, logits = runners
    return (
        _batched(feats, params, x_fit[:n_fit]),
        _batched(feats, params, x_te[:n_mi]),
        _batched(logits, params, x_te[:n_mi]),
    )


def _train_vmapped(cfg, data, keys, t_keys, lams, temps) -> dict:
    """Every network of the experiment, seeds × grid vmapped per σ (module docstring)."""
    xs_tr, y_tr, xs_te, y_te, teacher_images = data
    n_fit, n_mi, S = cfg["n_fit"], cfg["n_mi"], len(keys)
    zeros = np.zeros((len(y_tr), 10), np.float32)
    d_student = ArrayData(xs_tr, y_tr, zeros, xs_te, y_te)
    opts = cfg["compiler_options"]
    s_run = make_runners(cnn_config(cfg), d_student, cfg["learning_rate"], opts)
    base = s_run[0](d_student, keys)
    out = {"student_acc": np.asarray(base.metrics.test[:, -1])}
    out["h_fit"], out["h_te"], out["lg_te"] = _features(
        s_run, base.params, xs_tr, xs_te, n_fit, n_mi
    )
    t_config = cnn_config(cfg, cfg["teacher_steps"])
    per_sigma, t_run = [], None
    for sigma in cfg["sigmas"]:
        xt_tr, xt_te = teacher_images(sigma)
        d_teacher = ArrayData(xt_tr, y_tr, zeros, xt_te, y_te)
        t_run = t_run or make_runners(t_config, d_teacher, cfg["learning_rate"], opts)
        teach = t_run[0](d_teacher, t_keys)
        t_train_logits = _batched(t_run[3], teach.params, xt_tr)  # (S, n, C)
        res = s_run[1](d_student, t_train_logits, keys, lams, temps)
        h1_fit, h1_te, _ = _features(t_run, teach.params, xt_tr, xt_te, n_fit, n_mi)
        per_sigma.append(
            {
                "teacher_acc": np.asarray(teach.metrics.test[:, -1]),
                "kd_acc": np.asarray(res.metrics.test[..., -1]).reshape(S, -1),
                "diverged": np.asarray(res.diverged).reshape(S, -1),
                "h1_fit": h1_fit,
                "h1_te": h1_te,
            }
        )
    for k in per_sigma[0]:
        out[k] = np.stack([p[k] for p in per_sigma])
    return out


def _train_jobs(cfg, data, keys, t_keys, lams, temps, jobs_dir: Path) -> dict:
    """The same networks as `_train_vmapped`, one jitted single-student run per job, `threads`
    at a time; each job's outputs are saved (atomically) under jobs_dir as it finishes and
    loaded, not recomputed, when the experiment is run again with the same config."""
    import concurrent.futures
    import threading

    import jax.numpy as jnp

    from cch_jax.progress import Progress
    from cch_jax.results import read_json, save_json, save_npz

    xs_tr, y_tr, xs_te, y_te, teacher_images = data
    n_fit, n_mi, S = cfg["n_fit"], cfg["n_mi"], len(keys)
    sigmas, lr = list(cfg["sigmas"]), cfg["learning_rate"]
    jobs_dir.mkdir(parents=True, exist_ok=True)
    stamp = {k: v for k, v in cfg.items() if k not in ("threads",)}
    if (jobs_dir / "config.json").is_file():
        if read_json(jobs_dir / "config.json") != json.loads(json.dumps(jsonable(stamp))):
            raise ValueError(
                f"{jobs_dir} holds jobs of a different configuration: remove it, or choose "
                "another output folder (--out)"
            )
    else:
        save_json(jobs_dir / "config.json", stamp)

    zeros = jnp.zeros((len(y_tr), 10), jnp.float32)
    y_tr_j, y_te_j = jnp.asarray(y_tr), jnp.asarray(y_te)
    d_student = ArrayData(jnp.asarray(xs_tr), y_tr_j, zeros, jnp.asarray(xs_te), y_te_j)
    teacher_data, lock = {}, threading.Lock()

    def d_teacher(i):
        with lock:  # each σ's blurred images are loaded once and shared by its jobs
            if i not in teacher_data:
                xt_tr, xt_te = teacher_images(sigmas[i])
                teacher_data[i] = ArrayData(
                    jnp.asarray(xt_tr), y_tr_j, zeros, jnp.asarray(xt_te), y_te_j
                )
            return teacher_data[i]

    def runner(steps):
        """(one run: (data, key, λ, T) → TrainResult, features, logits), jitted."""
        train = make_train(cnn_config(cfg, steps), d_student)
        opts = cfg["compiler_options"]
        one = jax.jit(lambda d, key, lam, tau: train(d, key, lam, tau, lr), compiler_options=opts)
        return (one, *make_runners(cnn_config(cfg, steps), d_student, lr, opts)[2:])

    student_run, teacher_run = runner(cfg["steps"]), runner(cfg["teacher_steps"])
    ref_run = runner(cfg["reference_steps"]) if cfg["reference_seeds"] else None

    def with_run_axis(params):
        return jax.tree.map(lambda a: a[None], params)

    def job_student(s):
        r = student_run[0](d_student, keys[s], 0.0, 1.0)
        h_fit, h_te, lg_te = _features(
            (None, None, *student_run[1:]), with_run_axis(r.params), xs_tr, xs_te, n_fit, n_mi
        )
        return {"acc": r.metrics.test[-1], "h_fit": h_fit[0], "h_te": h_te[0], "lg_te": lg_te[0]}

    def job_reference(s):
        return {"acc": ref_run[0](d_student, keys[s], 0.0, 1.0).metrics.test[-1]}

    def job_teacher(i, s):
        d = d_teacher(i)
        r = teacher_run[0](d, t_keys[s], 0.0, 1.0)
        params = with_run_axis(r.params)
        h1_fit, h1_te, _ = _features(
            (None, None, *teacher_run[1:]), params, d.x_train, d.x_test, n_fit, n_mi
        )
        logits = _batched(teacher_run[2], params, d.x_train)[0]
        return {"acc": r.metrics.test[-1], "logits": logits, "h1_fit": h1_fit[0], "h1_te": h1_te[0]}

    def job_kd(i, s, g, teacher_logits):
        d = d_student._replace(teacher_train=jnp.asarray(teacher_logits))
        r = student_run[0](d, keys[s], lams[g], temps[g])
        return {"acc": r.metrics.test[-1], "diverged": r.diverged}

    def run(name, fn, *args):
        path = jobs_dir / f"{name}.npz"
        if not path.is_file():
            save_npz(path, {k: np.asarray(v) for k, v in fn(*args).items()})
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def stage(jobs, desc):
        """Run jobs [(name, fn, *args)], `threads` at a time; {name: outputs}."""
        done = {name for name, *_ in jobs if (jobs_dir / f"{name}.npz").is_file()}
        bar = Progress(len(jobs), desc=f"[{NAME}] {desc}", unit="runs")
        results = {}
        with concurrent.futures.ThreadPoolExecutor(cfg["threads"]) as pool:
            futures = {pool.submit(run, *job): job[0] for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                name = futures[future]
                results[name] = future.result()
                bar.update(skipped=name in done)
        bar.close()
        return results

    G = lams.size
    first = stage(
        [(f"student_s{s}", job_student, s) for s in range(S)]
        + [(f"teacher_{i}_s{s}", job_teacher, i, s) for i in range(len(sigmas)) for s in range(S)]
        + [(f"reference_s{s}", job_reference, s) for s in range(cfg["reference_seeds"])],
        "teachers and no-KD students",
    )
    kd = stage(
        [
            (f"kd_{i}_s{s}_g{g}", job_kd, i, s, g, first[f"teacher_{i}_s{s}"]["logits"])
            for i in range(len(sigmas))
            for s in range(S)
            for g in range(G)
        ],
        "KD students",
    )
    students = [first[f"student_s{s}"] for s in range(S)]
    teachers = [[first[f"teacher_{i}_s{s}"] for s in range(S)] for i in range(len(sigmas))]
    out = {k: np.stack([st[k] for st in students]) for k in ("h_fit", "h_te", "lg_te")}
    out["student_acc"] = np.stack([st["acc"] for st in students])
    out["teacher_acc"] = np.array([[t["acc"] for t in row] for row in teachers])
    out["h1_fit"] = np.array([[t["h1_fit"] for t in row] for row in teachers])
    out["h1_te"] = np.array([[t["h1_te"] for t in row] for row in teachers])
    for key in ("acc", "diverged"):
        out["kd_" + key if key == "acc" else key] = np.array(
            [
                [[kd[f"kd_{i}_s{s}_g{g}"][key] for g in range(G)] for s in range(S)]
                for i in range(len(sigmas))
            ]
        )
    if cfg["reference_seeds"]:
        out["reference_acc"] = np.array(
            [first[f"reference_s{s}"]["acc"] for s in range(cfg["reference_seeds"])]
        )
    return out


def main(*, quick: bool = False, medium: bool = False, out=None, figures=None, **overrides) -> dict:
    from cch_jax.data.real import load_mnist_pair

    if quick and medium:
        raise ValueError("quick=True and medium=True: choose one configuration")
    variant = "quick" if quick else ("medium" if medium else "full")
    cfg = {**CONFIG, **{"quick": QUICK, "medium": MEDIUM, "full": {}}[variant], **overrides}
    if cfg["runner"] not in ("vmap", "jobs"):
        raise ValueError(f"runner={cfg['runner']!r} must be 'vmap' or 'jobs'")
    cfg["teacher_steps"] = cfg["teacher_steps"] or cfg["steps"]
    sigmas, S = tuple(cfg["sigmas"]), cfg["seeds"]
    _, xs_tr, y_tr = load_mnist_pair("train", limit=cfg["n_train"])
    _, xs_te, y_te = load_mnist_pair("test", limit=cfg["n_test"])

    def teacher_images(sigma):
        xt_tr, _, _ = load_mnist_pair("train", blur_sigma=sigma, limit=cfg["n_train"])
        xt_te, _, _ = load_mnist_pair("test", blur_sigma=sigma, limit=cfg["n_test"])
        return xt_tr, xt_te

    key = jax.random.key(cfg["key"])
    k_student, k_teacher, k_mi = jax.random.split(key, 3)
    keys = jax.random.split(k_student, S)
    t_keys = jax.random.split(k_teacher, S)
    lams, temps = lam_temp_grid(cfg)
    cfg["n_fit"] = min(cfg["pca_fit"], cfg["n_train"])
    cfg["n_mi"] = n_mi = min(cfg["mi_n"], cfg["n_test"])
    directory = results_dir(NAME, out, quick)
    if medium and out is None:
        directory = directory.parent / "medium" / NAME
    data = (xs_tr, y_tr, xs_te, y_te, teacher_images)
    start = time.perf_counter()
    if cfg["runner"] == "jobs":
        nets = _train_jobs(cfg, data, keys, t_keys, lams, temps, directory / "jobs")
    else:
        nets = _train_vmapped(cfg, data, keys, t_keys, lams, temps)
    train_seconds = time.perf_counter() - start
    student_acc = nets["student_acc"]

    H2 = [reduce_features(nets["h_fit"][s], nets["h_te"][s], cfg, seed=(0, s)) for s in range(S)]
    s0 = cfg["check_seed"]
    H2c = check_features(nets["h_fit"][s0], nets["h_te"][s0], cfg, seed=(0, s0, 7))
    checks = []
    i2y = np.zeros((2, S, 2))
    for s in range(S):
        m = mi_label(
            H2[s],
            y_te[:n_mi],
            nets["lg_te"][s],
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
    teacher_acc, kd_acc = nets["teacher_acc"], nets["kd_acc"]
    i12 = np.zeros((2, len(sigmas), S, 2))
    for i, sigma in enumerate(sigmas):
        h1_fit, h1_te = nets["h1_fit"][i], nets["h1_te"][i]
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
        h1c = check_features(h1_fit[s0], h1_te[s0], cfg, seed=(i + 1, s0, 7))
        checks.append(check_setting(h1c, H2c, y_te[:n_mi], cfg, seed=i))
        gap = i12[0, i, :, 0] - i2y[0, :, 0]
        print(
            f"[{NAME}] σ = {sigma:g}: teacher accuracy {teacher_acc[i].mean():.3f}, "
            f"Δacc {100 * (kd_acc[i] - student_acc[:, None]).mean():+.2f} pts, "
            f"gap (knn) {gap.mean():+.3f} nats",
            flush=True,
        )

    arrays = check_arrays(checks) | {
        "student_acc": student_acc,
        "teacher_acc": teacher_acc,
        "kd_acc": kd_acc,
        "diverged": nets["diverged"],
        "i2y": i2y,
        "i12": i12,
        "lams": lams,
        "temps": temps,
    }
    if "reference_acc" in nets:
        arrays["reference_acc"] = nets["reference_acc"]
    summary = summarise(arrays, cfg)
    summary["train_seconds"] = train_seconds
    summary["seconds"] = time.perf_counter() - start
    save_results(
        directory, arrays, {"experiment": NAME, "variant": variant, "config": cfg, **summary}
    )
    plot(directory, figures_dir(figures, quick))
    return summary


def run_summary(directory) -> dict:
    """The headline numbers of a finished run, as committed in docs/runs/mnist_m_medium.json:
    per σ the teacher's accuracy, Δacc (grid mean, ± SEM over seeds) and the MI gaps; the no-KD
    student's accuracy (and a longer-trained reference, if run); the run's seconds and config.

        python -c "import experiments.mnist_m as m; m.run_summary('results/medium/mnist_m')"
    """
    from cch_jax.results import save_json

    arrays, meta = load_results(directory)
    rows = meta["rows"]
    out = {
        "sigmas": [r["sigma"] for r in rows],
        "teacher_accuracy": [r["teacher_acc"] for r in rows],
        "student_accuracy_no_kd": float(np.mean(arrays["student_acc"])),
        "student_accuracy_no_kd_per_seed": arrays["student_acc"].tolist(),
        "delta_accuracy": [r["delta_acc"] for r in rows],
        "delta_accuracy_sem": [r["delta_acc_sem"] for r in rows],
        "grid_points_helping": [r["grid_points_helping"] for r in rows],
        "gap_knn": [r["gap_knn"] for r in rows],
        "gap_gauss_ba": [r["gap_gauss_ba"] for r in rows],
        "check_full": [r["check_full"]["verdict"] for r in rows],
        "check_pca": [r["check_pca"]["verdict"] for r in rows],
        "seconds": meta.get("seconds"),
        "train_seconds": meta.get("train_seconds"),
        "date": meta["environment"]["date"],
        "config": {k: v for k, v in meta["config"].items() if k != "check_families"},
    }
    if "reference_acc" in arrays:
        out["student_accuracy_no_kd_reference"] = float(np.mean(arrays["reference_acc"]))
        out["reference_steps"] = meta["config"]["reference_steps"]
    save_json(Path(directory) / "run_summary.json", out)
    return out


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
        rows.append(row | check_row(arrays, i))
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
    checks = check_tallies(arrays, delta)
    for v in ("full", "pca"):
        print(f"[{NAME}] cch check ({v}) vs observed, per σ: {check_tally_line(checks[v])}")
    return {
        "rows": rows,
        "tallies": tallies,
        "check_tallies": checks,
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
    if "reference_acc" in arrays:
        ref = 100 * arrays["reference_acc"].mean()
        ax_s.axhline(
            ref,
            color="C2",
            ls=":",
            label=f"no-KD student, {cfg['reference_steps']} steps: {ref:.1f}",
        )
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
        f"steps (teachers {cfg.get('teacher_steps') or cfg['steps']}), {cfg['seeds']} seeds, λ ∈ {list(cfg['lams'])} × T ∈ {list(cfg['temperatures'])}"
    )
    suffix = "_medium" if meta.get("variant") == "medium" else ""
    return [save_figure(fig, figures / f"{NAME}{suffix}.png")]
