"""Print a uniform random sample of mutmut's mutant names, for `make mutate-sample`.

    python tools/mutant_sample.py [--size N] [--seed S] [--exclude PATTERN]... PATTERN...

Reads the names of every generated mutant from mutants/**/*.meta (written by any `make mutate`
run: mutmut generates all mutants of the `only_mutate` files, whatever it then runs), keeps those
matching a shell-style PATTERN and no --exclude pattern, and prints N of them drawn without
replacement with NumPy's generator seeded S. A uniform sample gives an unbiased estimate of a
module group's kill rate when running all of its mutants would take hours (docs/testing.md, run 6).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

import numpy as np


def mutant_names(root: Path) -> list[str]:
    """Every mutant name in root/**/*.meta, sorted (the sample depends only on the seed)."""
    names = set()
    for meta in root.rglob("*.meta"):
        names.update(json.loads(meta.read_text())["exit_code_by_key"])
    return sorted(names)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("patterns", nargs="+", metavar="PATTERN")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, default=Path("mutants"))
    args = p.parse_args(argv)
    match = lambda name, patterns: any(fnmatch.fnmatch(name, q) for q in patterns)  # noqa: E731
    names = [
        n for n in mutant_names(args.root) if match(n, args.patterns) and not match(n, args.exclude)
    ]
    if not names:
        print(
            f"no mutants match {args.patterns} under {args.root}/ (run `make mutate` first)",
            file=sys.stderr,
        )
        return 2
    pick = np.random.default_rng(args.seed).choice(
        len(names), min(args.size, len(names)), replace=False
    )
    print(" ".join(names[i] for i in sorted(pick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
