"""ΔR = R(λ) − R0 against the MI gap I(t; s) − I(s; y) over many random Gaussian models.

Theory for every model of `theory.audit` (latent-factor family of `theory.random_model`; the
teacher is the optimal one perturbed by `teacher_noise`, so that both exact verdicts occur), at
λ ∈ {0.2, 0.5, 1, 2}; colour = the exact verdict at that λ (KD helps iff R(λ) < R0). Models where
CCH's verdict (gap > 0 ⇒ helps) disagrees with the exact one are drawn as crosses. For a subset of
models, vmapped linear students (paired over λ, exact population risk) give mean ± 2 SEM.
"""

from __future__ import annotations

import jax
import numpy as np

import theory
from cch_jax.simulate import simulate_linear_kd
from experiments._common import (
    figures_dir,
    load_results,
    new_figure,
    results_dir,
    save_figure,
    save_results,
)
from experiments.theorem1_curves import CONVERGENCE_RTOL, convergence, paired_gain

NAME = "gap_scatter"
CONFIG = dict(
    num_models=2000,
    p1=10,
    p2=10,
    n=100,
    lams=(0.2, 0.5, 1.0, 2.0),
    teacher_noise=0.5,
    simulated_models=24,
    seeds=200,
    steps=2000,
    learning_rate=0.05,
    seed=1,
)
QUICK = dict(num_models=600, simulated_models=6, seeds=48)


def simulate(model, w1, cfg):
    """Student risks (λ incl. 0, seed), diverged count and `convergence` for one model."""
    lams = [0.0, *cfg["lams"]]
    sim = simulate_linear_kd(
        model,
        w1,
        cfg["n"],
        lams,
        cfg["seeds"],
        steps=cfg["steps"],
        learning_rate=cfg["learning_rate"],
    )
    return sim.risk, int(sim.diverged.sum()), convergence(sim)


def main(*, quick: bool = False, out=None, figures=None, **overrides) -> dict:
    cfg = {**CONFIG, **(QUICK if quick else {}), **overrides}
    sizes = {k: cfg[k] for k in ("num_models", "p1", "p2", "n", "lams", "teacher_noise")}
    a = theory.audit(jax.random.key(cfg["seed"]), **sizes)
    m = a.models
    # Simulate models spread evenly over the range of the gap.
    order = np.argsort(m.gap)
    picks = order[np.linspace(0, len(order) - 1, cfg["simulated_models"]).round().astype(int)]
    sim_gain, sim_sem, diverged, err, unconverged = [], [], 0, 0.0, 0
    for idx in picks:
        risk, div, (e, u) = simulate(a.model(idx), m.teacher[idx], cfg)
        err, unconverged = max(err, e), unconverged + u
        mean, sem = paired_gain(risk, m.baseline[idx])
        sim_gain.append(mean[1:])
        sim_sem.append(sem[1:])
        diverged += div
    z = (np.array(sim_gain) - m.risk_gain[picks] / m.baseline[picks, None]) / np.array(sim_sem)
    arrays = {f"models/{k}": v for k, v in m._asdict().items()}
    arrays.update(sim_index=picks, sim_rel_gain=np.array(sim_gain), sim_sem=np.array(sim_sem))
    summary = {
        "table": a.to_dict(),
        "simulated_models": len(picks),
        "max_abs_z_students_vs_theory": float(np.abs(z).max()),
        "diverged_runs": diverged,
        "max_rel_weight_error": err,
        "unconverged_students": unconverged,
    }
    directory = results_dir(NAME, out, quick)
    save_results(directory, arrays, {"experiment": NAME, "config": cfg, **summary})
    max_z = summary["max_abs_z_students_vs_theory"]
    print(
        f"[{NAME}] students vs theory: max |z| = {max_z:.2f} over {z.size} (model, λ) points; "
        f"weights within {err:.1e} of closed form; {unconverged} students > {CONVERGENCE_RTOL:g} "
        "from it"
    )
    plot(directory, figures_dir(figures, quick))
    return summary


def plot(directory, figures) -> list:
    arrays, meta = load_results(directory)
    cfg = meta["config"]
    gap, gain, r0 = arrays["models/gap"], arrays["models/risk_gain"], arrays["models/baseline"]
    rel = gain / r0[:, None]
    picks = arrays["sim_index"]
    fig, axes = new_figure(1, len(cfg["lams"]), figsize=(4.6 * len(cfg["lams"]), 4.6), sharey=True)
    for j, (ax, lam) in enumerate(zip(axes, cfg["lams"], strict=True)):
        helps = rel[:, j] < 0
        agree = (gap > 0) == helps
        for mask, colour, label in (
            (helps, "tab:green", "KD helps"),
            (~helps, "tab:red", "KD hurts"),
        ):
            on, off = mask & agree, mask & ~agree
            ax.scatter(
                gap[on],
                100 * rel[on, j],
                s=6,
                alpha=0.35,
                color=colour,
                label=f"{label} (CCH agrees)",
            )
            ax.scatter(
                gap[off],
                100 * rel[off, j],
                s=18,
                marker="x",
                color=colour,
                lw=0.9,
                label=f"{label} (CCH disagrees)",
            )
        ax.errorbar(
            gap[picks],
            100 * arrays["sim_rel_gain"][:, j],
            yerr=200 * arrays["sim_sem"][:, j],
            fmt="D",
            ms=4,
            color="k",
            mfc="gold",
            capsize=2,
            lw=0.8,
            label="trained students ± 2 SEM",
        )
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        n_dis = int(np.sum((gap > 0) != (rel[:, j] < 0)))
        ax.set_title(f"λ = {lam:g}: CCH wrong on {n_dis}/{len(gap)}", fontsize=10)
        ax.set_xlabel("MI gap I(t;s) − I(s;y)  [nats]")
        ax.set_yscale("symlog", linthresh=1.0)
        if j == 0:
            ax.set_ylabel("(R(λ) − R0) / R0  [%]")
            ax.legend(fontsize=6.5, loc="upper right")
    fig.suptitle(
        f"KD gain against the MI gap: {len(gap)} random Gaussian models (p1={cfg['p1']}, "
        f"p2={cfg['p2']}, n={cfg['n']}, teacher noise {cfg['teacher_noise']:g}); "
        "right of the dashed line CCH predicts 'helps'"
    )
    return [save_figure(fig, figures / f"{NAME}.png")]
