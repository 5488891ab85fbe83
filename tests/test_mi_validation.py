"""The validation experiment runs end to end in its tiny configuration, and writes only its
generated table (the hand-written findings in docs/mi_validation.md are never overwritten)."""

import json
from pathlib import Path

from cch_jax.mi.tasks import get
from experiments import mi_validation


def test_quick_validation_writes_figures_table_and_doc(tmp_path):
    findings = Path(mi_validation.__file__).resolve().parent.parent / "docs" / "mi_validation.md"
    before = findings.read_bytes()
    r = mi_validation.main(quick=True, out=tmp_path)
    assert {row["estimator"] for row in r["rows"]} == {"gaussian", "ksg", "mixed"}
    for row in r["rows"]:
        # The true MI is the task's closed form, and the bias is measured against it.
        assert row["true"] == get(row["task"]).mi and row["reps"] == 3
        assert row["bias"] == row["mean"] - row["true"]
        # 3 replicates of n = 240 with sd ≈ 0.05–0.1 nats: every estimator used here lands well
        # within 0.25 nats of the truth on these 1-d tasks (a sign or unit error would not).
        assert abs(row["bias"]) < 0.25, row
        assert row["sd"] > 0 and row["mean_stderr"] > 0 and abs(row["null_mean"]) < 0.1, row
    gauss = next(r for r in r["rows"] if r["task"] == "gauss-1+1" and r["estimator"] == "gaussian")
    assert gauss["coverage"] >= 2 / 3  # P(≤ 1 of 3 covers) < 1 % for an honest 95 % interval
    for f in r["figures"]:
        assert Path(f).stat().st_size > 10_000 and f.endswith(".png")
    assert Path(r["doc"]).name == mi_validation.TABLE
    doc = Path(r["doc"]).read_text()
    assert "| task | true MI | estimator |" in doc and "gauss-1+1" in doc
    assert "mi_validation.md" in doc  # links the hand-written findings
    meta = json.loads((tmp_path / "mi_validation" / "results.json").read_text())
    assert len(meta["rows"]) == len(r["rows"])
    assert findings.read_bytes() == before
