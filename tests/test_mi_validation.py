"""The validation experiment runs end to end in its tiny configuration."""

import json
from pathlib import Path

from experiments import mi_validation


def test_quick_validation_writes_figures_table_and_doc(tmp_path):
    r = mi_validation.main(quick=True, out=tmp_path)
    assert {row["estimator"] for row in r["rows"]} == {"gaussian", "ksg", "mixed"}
    for row in r["rows"]:
        assert 0.0 <= row["coverage"] <= 1.0 and row["reps"] == 3
    for f in r["figures"]:
        assert Path(f).stat().st_size > 10_000 and f.endswith(".png")
    doc = Path(r["doc"]).read_text()
    assert "| task | true MI | estimator |" in doc and "gauss-1+1" in doc
    meta = json.loads((tmp_path / "mi_validation" / "results.json").read_text())
    assert len(meta["rows"]) == len(r["rows"])
