"""Shared by the CLI tests: `cch ARGV` run in-process (so mutmut sees it), with its output."""

from cch_jax.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `cch ARGV`; arguments are turned into strings."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
