"""The `cch` command line. Each sub-command lives in its own module with `register(subparsers)`.

Exit codes: 0 ok; 1 a negative verdict (`cch verify` disagrees, …); 2 a user error (ValueError,
TypeError, OSError from bad input: one line on stderr, no traceback); 3 an internal error (a bug or
an exhausted resource: one line too, naming the exception). Set CCH_DEBUG=1 to see the traceback. Compiled programs are kept between
runs (`enable_compile_cache`; CCH_NO_COMPILE_CACHE=1 turns that off). XLA's C++ log lines are
silenced unless TF_CPP_MIN_LOG_LEVEL is set (`XLA_LOG_LEVEL`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings

# Sub-commands are discovered: every module cch_jax.cli.<name> with a `register(subparsers)`.
_NOT_COMMANDS = {"common", "__main__"}


def command_modules() -> list[str]:
    import cch_jax.cli as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in _NOT_COMMANDS]
    return sorted(names)


EXIT_OK, EXIT_NEGATIVE, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR = 0, 1, 2, 3


class UserError(Exception):
    """A problem with the user's input; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cch",
        description="When does cross-modal knowledge distillation help? (CCH toolkit)",
    )
    from cch_jax import __version__

    parser.add_argument("--version", action="version", version=f"cch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in command_modules():
        module = importlib.import_module(f"cch_jax.cli.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


COMPILE_CACHE_OFF = "CCH_NO_COMPILE_CACHE"


def enable_compile_cache() -> None:
    """Keep compiled XLA programs between runs, in <cache>/xla (<cache>: $CCH_CACHE or ~/.cache/cch).

    A repeated `cch verify` / `cch reproduce` then loads its programs instead of compiling them
    again (about half of a small run's time on a CPU). Off with CCH_NO_COMPILE_CACHE=1; a cache
    directory the user already gave JAX (JAX_COMPILATION_CACHE_DIR) is left as it is. JAX keys the
    entries by program, versions and device, and caches only compiles over 1 s by default.
    """
    if os.environ.get(COMPILE_CACHE_OFF) or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax

    from cch_jax.data.wheels import cache_dir

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"cch: warning: {message}\n"


# XLA's C++ log lines (absl) at ERROR and below are silenced unless the user sets the level: on
# some CPUs (seen on AMD Zen 4, jaxlib 0.9.2) every program loaded from the compile cache logged two
# ERROR lines, several hundred characters each, warning of a machine-feature mismatch
# ("+prefer-no-gather": a tuning flag, not an instruction set) that is false for a program compiled
# on the same machine. Errors that matter reach Python as exceptions. TF_CPP_MIN_LOG_LEVEL=0 shows
# them all again. Read when jaxlib starts, so it is set before any sub-command imports JAX.
XLA_LOG_LEVEL = ("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    os.environ.setdefault(*XLA_LOG_LEVEL)
    warnings.formatwarning = _one_line_warning  # a user reads warnings, not source locations
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        enable_compile_cache()
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe cannot be caught
        return rc
    except BrokenPipeError:
        # The reader went away (`cch ... | head`): not an error. Point stdout at devnull so that
        # the flush at interpreter exit has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UserError, ValueError, TypeError, OSError) as err:
        if os.environ.get("CCH_DEBUG"):
            raise
        sys.stderr.write(f"cch {args.command}: error: {_first_line(err)}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"cch {args.command}: interrupted (results already saved are kept)\n")
        return 130
    except Exception as err:  # a bug, or memory/device exhausted: still one line
        if os.environ.get("CCH_DEBUG"):
            raise
        sys.stderr.write(
            f"cch {args.command}: internal error: {type(err).__name__}: {_first_line(err)} "
            "(rerun with CCH_DEBUG=1 for the traceback)\n"
        )
        return EXIT_INTERNAL_ERROR


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
