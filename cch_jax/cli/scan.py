"""`cch scan`: a general λ × temperature × learning_rate × seed scan from a config file.

The config (TOML, or JSON with the same structure) is documented in docs/engine.md; an example
is docs/examples/scan_gaussian.toml. Results: OUT/results.npz + OUT/results.json (resumable:
rerun the same command after an interruption and it continues from the last finished chunk).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from cch_jax.cli import UserError

SECTIONS = {"train", "data", "grid", "scan"}
TRAIN_KEYS = {"task", "model", "model_kwargs", "steps", "eval_every", "optimizer", "schedule",
              "batch_size", "fast_path"}  # fmt: skip
GRID_KEYS = {"lam", "temperature", "learning_rate", "seeds"}
SCAN_KEYS = {"chunk_size", "keep_params", "out", "x64", "vmap_size"}
ARRAY_MEMBERS = ("x_train", "y_train", "teacher_train", "x_test", "y_test")


def register(sub) -> None:
    p = sub.add_parser(
        "scan",
        help="run a vmapped KD scan described by a TOML/JSON config file",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--config", required=True, help="scan config (.toml or .json)")
    p.add_argument(
        "--out", help="output directory (default: the config's scan.out, else results/<name>)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def read_config(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config: file {path!r} does not exist")
    try:
        text = p.read_text()
        cfg = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"--config: cannot parse {path!r}: {err}") from None
    unknown = set(cfg) - SECTIONS
    if unknown:
        raise UserError(
            f"--config: unknown section(s) {sorted(unknown)}; allowed {sorted(SECTIONS)}"
        )
    for section, allowed in (("train", TRAIN_KEYS), ("grid", GRID_KEYS), ("scan", SCAN_KEYS)):
        extra = set(cfg.get(section, {})) - allowed
        if extra:
            raise UserError(
                f"--config: unknown key(s) {sorted(extra)} in [{section}]; allowed {sorted(allowed)}"
            )
    for section in ("data", "grid"):
        if section not in cfg:
            raise UserError(f"--config: section [{section}] is required")
    return cfg


def _path(base: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else base / p)


def build_data(section: dict, base: Path):
    """[data] → a GaussianSource or ArrayData."""
    import jax

    import theory
    from cch_jax.cli.common import load_array
    from cch_jax.train import ArrayData, GaussianSource

    kind = section.get("kind", "gaussian")
    if kind == "gaussian":
        if "random" in section:
            r = section["random"]
            model = theory.random_model(
                jax.random.key(int(r.get("key", 0))), int(r["p1"]), int(r["p2"])
            )
        elif "cov" in section and "p1" in section:
            cov = load_array(_path(base, section["cov"]), name="data.cov")
            if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
                raise UserError(f"data.cov: array of shape {cov.shape} must be a square matrix")
            p1 = int(section["p1"])
            model = theory.JointGaussian(cov, p1, cov.shape[0] - p1 - 1)
        else:
            raise UserError(
                "[data] kind='gaussian' needs cov (a file) and p1, or random = {p1, p2, key}"
            )
        if "n" not in section:
            raise UserError("[data] n (training-set size) is required for kind='gaussian'")
        n = int(section["n"])
        if n <= model.p2 + 1:
            raise UserError(
                f"data.n={n} must exceed p2+1={model.p2 + 1}: the expected risk is infinite"
            )
        w1 = load_array(_path(base, section["w1"]), name="data.w1") if "w1" in section else None
        return GaussianSource(model, n, w1=w1)
    if kind == "arrays":
        if "path" not in section:
            raise UserError(
                "[data] kind='arrays' needs path = an .npz with " + ", ".join(ARRAY_MEMBERS)
            )
        file = _path(base, section["path"])
        arrays = [load_array(file, name="data.path", key=k) for k in ARRAY_MEMBERS]
        return ArrayData(*arrays)
    raise UserError(f"data.kind={kind!r} must be 'gaussian' or 'arrays'")


def _seeds(value) -> np.ndarray:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"grid.seeds={value} must be >= 1 (a count) or a list of seeds")
        return np.arange(value)
    if isinstance(value, dict):
        return np.arange(
            int(value.get("start", 0)), int(value.get("start", 0)) + int(value["count"])
        )
    return np.asarray(value)


def run(args) -> int:
    import jax

    cfg = read_config(args.config)
    base = Path(args.config).resolve().parent
    scan_opts = cfg.get("scan", {})
    if scan_opts.get("x64", False):
        jax.config.update("jax_enable_x64", True)  # this process only; set before any array

    from cch_jax.cli.common import print_json
    from cch_jax.scan import run_scan
    from cch_jax.train import ArrayData, TrainConfig

    data = build_data(cfg["data"], base)
    train = dict(cfg.get("train", {}))
    if isinstance(data, ArrayData):
        if "task" not in train:
            train["task"] = (
                "classification" if np.issubdtype(data.y_train.dtype, np.integer) else "regression"
            )
        if train["task"] == "classification":
            data = data._replace(
                y_train=data.y_train.astype(np.int32), y_test=data.y_test.astype(np.int32)
            )
    config = TrainConfig(data=data, **train)
    grid = cfg["grid"]
    if "lam" not in grid or "seeds" not in grid:
        raise UserError("[grid] needs lam (a list) and seeds (a count or a list)")
    out = args.out or scan_opts.get("out") or str(Path("results") / Path(args.config).stem)
    result = run_scan(
        config,
        grid["lam"],
        grid.get("temperature", [1.0]),
        _seeds(grid["seeds"]),
        learning_rates=grid.get("learning_rate", [1e-2]),
        chunk_size=int(scan_opts.get("chunk_size", 4096)),
        keep_params=bool(scan_opts.get("keep_params", True)),
        out=out,
        vmap_size=scan_opts.get("vmap_size"),
    )
    if args.json:
        print_json(
            {
                "out": out,
                "shape": dict((a, len(v)) for a, v in result.coords),
                "n_diverged": int(np.sum(result.diverged)),
                "final_test_mean": np.nanmean(
                    np.where(result.diverged, np.nan, result.final_test), axis=-1
                ),
            }
        )
    else:
        print(result.summary())
        print(f"saved {out}/results.npz and {out}/results.json")
    return 0
