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

MAX_SEED = 2**31 - 1


# --- the config schema: every key's type and range, the key named in every message ------------


def _where(key: str, value) -> str:
    return f"{key}={value!r}"


def _integer(low: int, high: int | None = None):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{_where(key, value)} must be an integer")
        if value < low or (high is not None and value > high):
            rule = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise UserError(f"{_where(key, value)} must be {rule}")
        return value

    return check


def _boolean(key, value):
    if not isinstance(value, bool):
        raise UserError(f"{_where(key, value)} must be true or false")
    return value


def _string(key, value):
    if not isinstance(value, str) or not value:
        raise UserError(f"{_where(key, value)} must be a non-empty string")
    return value


def _choice(*options):
    def check(key, value):
        if value not in options or not isinstance(value, str):
            raise UserError(f"{_where(key, value)} must be one of {list(options)}")
        return value

    return check


def _numbers(key, value):
    """A list of real numbers (one number is a list of one)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UserError(f"{key}=[] must be a non-empty list of numbers")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise UserError(f"{_where(key, value)} must be a number or a list of numbers")
    return items


def _table(spec: dict, required=()):
    def check(key, value):
        if not isinstance(value, dict):
            keys = "{" + ", ".join(spec) + "}"
            raise UserError(f"{_where(key, value)} must be a table {keys}")
        unknown = sorted(set(value) - set(spec))
        if unknown:
            raise UserError(f"{key}: unknown key(s) {unknown}; allowed {sorted(spec)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise UserError(f"{key}: {', '.join(missing)} required")
        return {k: spec[k](f"{key}.{k}", v) for k, v in value.items()}

    return check


def _any_table(key, value):
    if not isinstance(value, dict):
        raise UserError(f"{_where(key, value)} must be a table of module fields")
    return value


def _seeds(key, value) -> np.ndarray:
    """A count N (seeds 0…N−1), a list of seeds, or {start, count}: checked before any array."""
    if isinstance(value, dict):
        value = _table({"start": _integer(0, MAX_SEED), "count": _integer(1)}, ["count"])(
            key, value
        )
        start, count = value.get("start", 0), value["count"]
    elif isinstance(value, list):
        for v in value:
            _integer(0, MAX_SEED)(f"{key}[]", v)
        return np.asarray(value, dtype=np.int64)
    else:
        start, count = 0, _integer(1)(key, value)
    if start + count - 1 > MAX_SEED:
        raise UserError(
            f"{key}: seeds {start}…{start + count - 1} must lie in [0, {MAX_SEED}] "
            f"(count={count} is too many)"
        )
    return start, count


TRAIN = {
    "task": _choice("regression", "classification"),
    "model": _choice("linear", "mlp", "cnn"),
    "model_kwargs": _any_table,
    "steps": _integer(1),
    "eval_every": _integer(1),
    "optimizer": _choice("adam", "sgd"),
    "schedule": _choice("constant", "cosine"),
    "batch_size": _integer(1),
    "fast_path": _boolean,
}
RANDOM = {"p1": _integer(1), "p2": _integer(1), "key": _integer(0, MAX_SEED)}
GAUSSIAN = {
    "kind": _choice("gaussian"),
    "random": _table(RANDOM, ["p1", "p2"]),
    "cov": _string,
    "p1": _integer(1),
    "n": _integer(1),
    "w1": _string,
}
ARRAYS = {"kind": _choice("arrays"), "path": _string}
GRID = {"lam": _numbers, "temperature": _numbers, "learning_rate": _numbers, "seeds": _seeds}
SCAN = {
    "chunk_size": _integer(1),
    "keep_params": _boolean,
    "out": _string,
    "x64": _boolean,
    "vmap_size": _integer(1),
}


def _data(key, value):
    if not isinstance(value, dict):
        raise UserError(f"[data] must be a table (section), not {value!r}")
    kind = value.get("kind", "gaussian")
    if kind not in ("gaussian", "arrays"):
        raise UserError(f"{_where('data.kind', kind)} must be 'gaussian' or 'arrays'")
    spec, required = (GAUSSIAN, ["n"]) if kind == "gaussian" else (ARRAYS, ["path"])
    data = _table(spec, required)(key, value)
    if kind == "gaussian" and ("random" in data) == ("cov" in data or "p1" in data):
        raise UserError(
            "data: kind='gaussian' needs either cov (a file) and p1, or random = {p1, p2, key}"
        )
    if kind == "gaussian" and "cov" in data and "p1" not in data:
        raise UserError("data: cov needs p1 (the teacher dimension)")
    return data


SECTIONS = {
    "train": _table(TRAIN),
    "data": _data,
    "grid": _table(GRID, ["lam", "seeds"]),
    "scan": _table(SCAN),
}


def parse_config(cfg) -> dict:
    """The config checked against the schema (key sets, types, ranges); UserError names the key."""
    if not isinstance(cfg, dict):
        raise UserError(f"--config: the file must hold a table of sections, not {cfg!r}")
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise UserError(f"--config: unknown section(s) {unknown}; allowed {sorted(SECTIONS)}")
    for section in ("data", "grid"):
        if section not in cfg:
            raise UserError(f"--config: section [{section}] is required")
    return {name: SECTIONS[name](name, value) for name, value in cfg.items()}


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
    p.add_argument(
        "--memory-budget",
        type=float,
        metavar="GB",
        help="memory the scan may plan for (default: 80%% of the device's, half the RAM on a CPU)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def read_config(path: str) -> dict:
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--config: {path!r} is a directory; give a .toml or .json file")
    if not p.is_file():
        raise UserError(f"--config: file {path!r} does not exist")
    try:
        text = p.read_text()
        cfg = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"--config: cannot parse {path!r}: {err}") from None
    return parse_config(cfg)


def _path(base: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else base / p)


def build_data(section: dict, base: Path):
    """[data] (checked by the schema) → a GaussianSource or ArrayData."""
    import jax

    import theory
    from cch_jax.cli.common import load_array
    from cch_jax.train import ArrayData, GaussianSource

    if section.get("kind", "gaussian") == "arrays":
        file = _path(base, section["path"])
        return ArrayData(*(load_array(file, name="data.path", key=k) for k in ArrayData._fields))
    if "random" in section:
        r = section["random"]
        model = theory.random_model(jax.random.key(r.get("key", 0)), r["p1"], r["p2"])
    else:
        cov = load_array(_path(base, section["cov"]), name="data.cov")
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise UserError(f"data.cov: array of shape {cov.shape} must be a square matrix")
        p1 = section["p1"]
        if cov.shape[0] - p1 - 1 < 1:
            raise UserError(
                f"data.p1={p1} must leave p2 = size − p1 − 1 >= 1 (data.cov is {cov.shape[0]} wide)"
            )
        try:
            model = theory.JointGaussian(cov, p1, cov.shape[0] - p1 - 1)
        except (ValueError, TypeError) as err:
            raise UserError(f"data.cov: {err}") from None
    n = section["n"]
    if n <= model.p2 + 1:
        raise UserError(
            f"data.n={n} must exceed p2+1={model.p2 + 1}: the expected risk is infinite"
        )
    w1 = load_array(_path(base, section["w1"]), name="data.w1") if "w1" in section else None
    try:
        return GaussianSource(model, n, w1=w1)
    except (ValueError, TypeError) as err:
        raise UserError(f"data.w1: {err}") from None


def run(args) -> int:
    import jax

    cfg = read_config(args.config)
    budget = None
    if args.memory_budget is not None:
        if not (np.isfinite(args.memory_budget) and args.memory_budget > 0):
            raise UserError(f"--memory-budget={args.memory_budget} must be > 0 (GB)")
        budget = int(args.memory_budget * 2**30)
    base = Path(args.config).resolve().parent
    scan_opts = cfg.get("scan", {})
    if scan_opts.get("x64", False):
        jax.config.update("jax_enable_x64", True)  # this process only; set before any array

    from cch_jax.cli.common import print_json
    from cch_jax.data.arrays import check_arrays
    from cch_jax.scan import default_memory_budget, plan_chunks, run_scan
    from cch_jax.train import ArrayData, TrainConfig

    data = build_data(cfg["data"], base)
    train = dict(cfg.get("train", {}))
    if isinstance(data, ArrayData):
        if "task" not in train:
            integer = np.issubdtype(data.y_train.dtype, np.integer)
            train["task"] = "classification" if integer else "regression"
        check_arrays(data, train["task"])  # before labels are cast to int32
        if train["task"] == "classification":
            data = data._replace(
                y_train=data.y_train.astype(np.int32), y_test=data.y_test.astype(np.int32)
            )
    config = TrainConfig(data=data, **train)
    grid = cfg["grid"]
    seeds = grid["seeds"]
    lams, temps = grid["lam"], grid.get("temperature", [1.0])
    lrs = grid.get("learning_rate", [1e-2])
    count = len(seeds) if isinstance(seeds, np.ndarray) else seeds[1]
    chunk_size = scan_opts.get("chunk_size", 4096)
    budget = default_memory_budget() if budget is None else budget
    plan_chunks(config, (len(lams), len(temps), len(lrs), count), chunk_size, budget)  # sizes
    if not isinstance(seeds, np.ndarray):
        seeds = np.arange(seeds[0], seeds[0] + seeds[1])
    out = args.out or scan_opts.get("out") or str(Path("results") / Path(args.config).stem)
    result = run_scan(
        config,
        lams,
        temps,
        seeds,
        learning_rates=lrs,
        chunk_size=chunk_size,
        keep_params=scan_opts.get("keep_params", True),
        out=out,
        vmap_size=scan_opts.get("vmap_size"),
        memory_budget=budget,
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
