"""Reproductions of the paper's experiments. One module per figure/table, each with
`main(*, quick=False, out=None, figures=None, **overrides) -> dict` and `plot(results_dir, figures)`.

`cch reproduce NAME` runs one (or a group such as `synthetic`); `cch plot RESULTS_DIR` redraws
figures from saved results without recomputing.
"""

from __future__ import annotations

import importlib

# name → module under experiments/
EXPERIMENTS = {
    "theorem1_curves": "experiments.theorem1_curves",
    "gap_scatter": "experiments.gap_scatter",
    "cch_audit": "experiments.cch_audit",
    "mfh_classification": "experiments.mfh_classification",
    "mi_validation": "experiments.mi_validation",
    "mnist_m": "experiments.mnist_m",
    "omics": "experiments.omics",
    "multiview": "experiments.multiview",
}

GROUPS = {
    "synthetic": ("theorem1_curves", "gap_scatter", "cch_audit", "mfh_classification"),
    "real": ("multiview", "omics", "mnist_m"),
}


def load(name: str):
    """The experiment module called `name`."""
    if name not in EXPERIMENTS:
        known = sorted([*EXPERIMENTS, *GROUPS])
        raise ValueError(f"experiment {name!r} is unknown; choose one of {known}")
    return importlib.import_module(EXPERIMENTS[name])


def expand(name: str) -> tuple[str, ...]:
    """A group name → its experiments; an experiment name → itself."""
    return GROUPS.get(name, (name,))
