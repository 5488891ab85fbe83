"""Is CCH necessary, sufficient, neither? The confusion table of the CCH verdict against the exact
verdict over 10⁴ random Gaussian models (`theory.audit`, latent-factor family of
`theory.random_model`, optimal teacher).

Exact verdicts: "small-λ KD helps" (∂R/∂λ(0) < 0 ⇔ c < σ²) and "R(λ) < R0" at λ ∈ {0.2, 0.5, 1, 2}.
Two teachers: the population-optimal one, and the same perturbed (teacher_noise = 1: an imperfect
teacher, for which Theorem 1's assumptions can fail). Pure theory: no training, seconds on a CPU.
"""

from __future__ import annotations

import jax
import numpy as np

import theory
from experiments._common import (
    figures_dir,
    load_results,
    new_figure,
    results_dir,
    save_figure,
    save_results,
)

NAME = "cch_audit"
CONFIG = dict(
    num_models=10_000,
    p1=10,
    p2=10,
    n=100,
    lams=(0.2, 0.5, 1.0, 2.0),
    teacher_noise=(0.0, 1.0),
    seed=0,
)
QUICK = dict(num_models=2_000)


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    tables, arrays = [], {}
    for i, noise in enumerate(cfg["teacher_noise"]):
        a = theory.audit(
            jax.random.key(cfg["seed"]),  # same models for every teacher
            num_models=cfg["num_models"],
            p1=cfg["p1"],
            p2=cfg["p2"],
            n=cfg["n"],
            lams=cfg["lams"],
            teacher_noise=noise,
        )
        tables.append(a.to_dict())
        arrays.update({f"teacher{i}/{k}": v for k, v in a.models._asdict().items()})
    directory = results_dir(NAME, out, quick)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, "tables": tables})
    plot(directory, figures_dir(figures, quick))
    return {"tables": tables}


def _rates(conf: dict) -> dict:
    """P(helps | CCH), P(helps | ¬CCH) and CCH's recall of 'helps'."""
    tp, fp = conf["cch_and_helps"], conf["cch_and_hurts"]
    fn, tn = conf["no_cch_and_helps"], conf["no_cch_and_hurts"]
    div = lambda a, b: a / b if b else float("nan")
    return {
        "p_helps_given_cch": div(tp, tp + fp),
        "p_helps_given_no_cch": div(fn, fn + tn),
        "recall": div(tp, tp + fn),
    }


CELLS = ["CCH ∧ helps", "CCH ∧ hurts", "¬CCH ∧ helps", "¬CCH ∧ hurts"]
KEYS = ["cch_and_helps", "cch_and_hurts", "no_cch_and_helps", "no_cch_and_hurts"]


def _rows(t: dict) -> list:
    return [("small λ (slope<0)", t["small_lambda"])] + [
        (f"λ = {c['lam']:g}", c) for c in t["at_lambda"]
    ]


def _draw_table(ax, t: dict, show_rows: bool = True) -> None:
    rows = _rows(t)
    counts = np.array([[r[k] for k in KEYS] for _, r in rows], dtype=float)
    frac = counts / counts.sum(axis=1, keepdims=True)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, j in np.ndindex(*frac.shape):
        colour = "white" if frac[i, j] > 0.55 else "black"
        label = f"{int(counts[i, j])}\n({100 * frac[i, j]:.1f}%)"
        ax.text(j, i, label, ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(4), CELLS, fontsize=8)
    ax.set_yticks(range(len(rows)), [r for r, _ in rows] if show_rows else [], fontsize=8)
    ax.grid(False)
    ax.set_title(f"teacher: {t['teacher']}", fontsize=10)


def plot(directory, figures) -> list:
    _, meta = load_results(directory)
    tables = meta["tables"]
    fig, axes = new_figure(1, len(tables) + 1, figsize=(6.2 * len(tables) + 5, 4.8))
    for i, (ax, t) in enumerate(zip(axes, tables, strict=False)):
        _draw_table(ax, t, show_rows=i == 0)
    ax_r = axes[-1]
    labels = [r for r, _ in _rows(tables[0])]
    x = np.arange(len(labels))
    width = 0.8 / (2 * len(tables))
    for i, t in enumerate(tables):
        rates = [_rates(r) for _, r in _rows(t)]
        tag = "optimal" if not t["teacher_noise"] else f"noise {t['teacher_noise']:g}"
        for j, (key, sym) in enumerate(
            [("p_helps_given_cch", "CCH"), ("p_helps_given_no_cch", "¬CCH")]
        ):
            offset = (2 * i + j - len(tables) + 0.5) * width
            ax_r.bar(x + offset, [r[key] for r in rates], width, label=f"P(helps | {sym}), {tag}")
    ax_r.set_xticks(x, labels, fontsize=7, rotation=20)
    ax_r.set_ylim(0, 1.05)
    ax_r.set_ylabel("fraction of models")
    ax_r.legend(loc="lower left", fontsize=7)
    ax_r.set_title("Helps given the CCH verdict", fontsize=10)
    t = tables[0]
    fig.suptitle(
        f"CCH verdict vs exact verdict over {t['num_models']} random Gaussian models "
        f"(p1={t['p1']}, p2={t['p2']}, n={t['n']}); Theorem-1 violations: "
        + ", ".join(str(t["theorem1_violations"]) for t in tables)
    )
    return [save_figure(fig, figures / f"{NAME}.png")]
