"""`cch reproduce NAME [--quick] [--out DIR]` and `cch plot RESULTS_DIR`."""

from __future__ import annotations

import time
from pathlib import Path

import experiments
from cch_jax.cli.common import UserError


def register(sub) -> None:
    names = ", ".join([*experiments.GROUPS, *experiments.EXPERIMENTS])
    p = sub.add_parser(
        "reproduce",
        help="run a reproduction of the paper's experiments (figures + results)",
        description=f"Run an experiment or a group of them: {names}.",
    )
    p.add_argument("name", help=f"one of: {names}")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (CPU, minutes)")
    size.add_argument(
        "--medium",
        action="store_true",
        help="mnist_m only: the largest configuration that runs within an hour on a 2-core CPU "
        "(resumable: run it again to continue; results under results/medium/)",
    )
    p.add_argument("--out", help="results directory (default results/ or results/quick/)")
    p.add_argument(
        "--figures", help="figures directory (default figures/, or figures/quick/ with --quick)"
    )
    p.set_defaults(func=run_reproduce)

    q = sub.add_parser(
        "plot",
        help="redraw figures from saved results, without recomputing",
        description="RESULTS_DIR: one experiment's folder (holding results.json) or a parent.",
    )
    q.add_argument(
        "results_dir", help="results folder of one experiment, or a parent such as results/quick"
    )
    q.add_argument(
        "--figures",
        help="figures directory (default figures/, or figures/quick/ for results under a "
        "folder named quick, as `cch reproduce --quick` writes them)",
    )
    q.set_defaults(func=run_plot)


def run_reproduce(args) -> int:
    names = experiments.expand(args.name)
    for name in names:
        experiments.load(name)  # unknown names fail before any work
    if args.medium and list(names) != ["mnist_m"]:
        raise UserError(f"--medium is defined for mnist_m only, not {args.name!r}")
    for name in names:
        start = time.perf_counter()
        print(f"== {name} ==", flush=True)
        size = {"medium": True} if args.medium else {"quick": args.quick}
        experiments.load(name).main(**size, out=args.out, figures=args.figures)
        print(f"== {name}: done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def run_plot(args) -> int:
    root = Path(args.results_dir)
    if not root.is_dir():
        raise UserError(f"results_dir={args.results_dir!r} is not a directory")
    from cch_jax.results import read_json

    folders = [root] if (root / "results.json").is_file() else sorted(root.glob("*/"))
    done, others = 0, []
    for folder in folders:
        sidecar = folder / "results.json"
        if not sidecar.is_file():
            continue
        name = read_json(sidecar).get("experiment")
        if name not in experiments.EXPERIMENTS:
            others.append(sidecar)
            continue
        quick = "quick" in folder.parts
        from experiments._common import figures_dir

        for path in experiments.load(name).plot(folder, figures_dir(args.figures, quick)):
            print(path)
        done += 1
    if not done and others:
        raise UserError(
            f"{others[0]} holds no experiment's results (a `cch scan`'s, say): cch plot redraws "
            "the figures of `cch reproduce`; load a scan with cch_jax.results.load_scan"
        )
    if not done:
        raise UserError(f"no experiment results (results.json) found under {args.results_dir!r}")
    return 0
