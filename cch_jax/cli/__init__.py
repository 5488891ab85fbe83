"""The `cch` command line. Each sub-command lives in its own module with `register(subparsers)`.

User errors (ValueError, TypeError, OSError from bad input) print one line on stderr and exit 2;
no traceback. Set CCH_DEBUG=1 to see the traceback anyway. Compiled programs are kept between
runs (`enable_compile_cache`; CCH_NO_COMPILE_CACHE=1 turns that off).
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


def main(argv=None) -> int:
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
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"cch {args.command}: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"cch {args.command}: interrupted (results already saved are kept)\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
