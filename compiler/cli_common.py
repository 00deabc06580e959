"""What `bnnc compile`/`run` (cli.py) and `bnnc opt` (opt.py) share: the exit
codes, the mapping from an exception to a one-line message and a code, and the
MLIR-style instrumentation flags (--print-ir-*, --timing)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_USAGE = 2  # an error the user can fix: bad model, input, IR, target or pass
EXIT_INTERNAL = 3  # a bug in bnnc
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
EXIT_BROKEN_PIPE = 141  # stdout's reader went away, as a shell reports SIGPIPE


def add_instrumentation_args(p: argparse.ArgumentParser) -> None:
    """--print-ir-after-all, --print-ir-after=PASS, --print-ir-before=PASS, --timing."""
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (to stderr)")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="PASS", help="print the IR after PASS")
    p.add_argument("--print-ir-before", action="append", default=[], metavar="PASS", help="print the IR before PASS")
    p.add_argument("--timing", action="store_true", help="report the wall time of every pass (to stderr)")


def instrumentation_from_args(args: argparse.Namespace):
    """The pipeline.Instrumentation the flags of add_instrumentation_args ask for."""
    from bnnc.pipeline import Instrumentation

    return Instrumentation(
        print_after_all=args.print_ir_after_all,
        print_after=set(args.print_ir_after),
        print_before=set(args.print_ir_before),
        timing=args.timing,
    )


def error_message(e: BaseException) -> str | None:
    """The one-line `bnnc: error: ...` text of an error the user can fix, or
    None for an internal error. Decided by the exception's type only."""
    from xdsl.utils.exceptions import DiagnosticException, ParseError, PassFailedException, VerifyException

    from bnnc.errors import BnncError

    if isinstance(e, BnncError):
        return str(e)
    if isinstance(e, ParseError):
        return f"malformed IR: {e}"
    if isinstance(e, (VerifyException, DiagnosticException)):
        return f"invalid IR: {e}"
    if isinstance(e, PassFailedException):
        return f"a pass failed: {e}"
    if isinstance(e, UnicodeDecodeError):
        return f"the input is not UTF-8 text IR ({e.reason} at byte {e.start})"
    if isinstance(e, OSError):  # an input file is missing, a directory, unreadable
        name = e.filename if e.filename is not None else "input"
        return f"cannot read {name}: {e.strerror or e}"
    return None


def run_command(command: Callable[[], int], *, user_errors: tuple[type[BaseException], ...] | None = None) -> int:
    """Run `command` and turn what it raises into an exit code: a user error
    (error_message) prints `bnnc: error: ...` and gives EXIT_USAGE; Ctrl-C
    gives EXIT_INTERRUPTED; a closed stdout (`bnnc opt f.mlir | head -1`)
    stops quietly with EXIT_BROKEN_PIPE, as Unix tools do; anything else is
    an internal error (EXIT_INTERNAL, the traceback with BNNC_TRACEBACK=1).
    `user_errors`, if given, narrows which exception types count as the
    user's (cli.py: only BnncError)."""
    try:
        code = command()
        sys.stdout.flush()  # here, not at exit, so that a closed stdout is seen below
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        if isinstance(e, BrokenPipeError) and _stdout_closed():
            return EXIT_BROKEN_PIPE
        message = error_message(e) if user_errors is None or isinstance(e, user_errors) else None
        if message is not None:
            print(f"bnnc: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("BNNC_TRACEBACK"):
            raise
        print(
            f"bnnc: internal error: {type(e).__name__}: {e}\n(set BNNC_TRACEBACK=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports POLLERR on
    its write end). If so, stdout is pointed at /dev/null so that Python's flush
    at exit does not report the same error again."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        broken = any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # stdout replaced or already closed
        return False
    if broken:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return broken
