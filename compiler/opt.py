"""`bnnc opt`: xDSL's opt driver with the bnn dialect and every bnnc pass,
plus MLIR-style instrumentation (--print-ir-after-all, --print-ir-after=PASS,
--print-ir-before=PASS, --timing) and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import time
from collections.abc import Sequence

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.exceptions import DiagnosticException, ParseError, PassFailedException, VerifyException
from xdsl.xdsl_opt_main import xDSLOptMain

from bnnc.context import make_context
from bnnc.errors import BnncError, IRError, PassError
from bnnc.passes.registry import all_passes
from bnnc.pipeline import Instrumentation


def _harden_xdsl_lexer() -> None:
    """xDSL's string-literal regex nests `+` inside `*`: an unterminated string
    on a long line backtracks exponentially (a hang). Same language, linear time."""
    from xdsl.utils.mlir_lexer import MLIRLexer

    MLIRLexer._unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')


_harden_xdsl_lexer()


def check_defined_before_use(module: ModuleOp, where: str) -> None:
    """Refuse a value used before its definition in the same block (xDSL's verifier
    does not check dominance; passes assume it). Multi-block CFGs are not judged."""
    from xdsl.ir import OpResult

    from bnnc.errors import IRError

    index: dict[int, dict] = {}
    for user in module.walk():
        for value in user.operands:
            if not isinstance(value, OpResult):
                continue
            owner = value.op
            block = owner.parent_block()
            anchor = user
            while anchor is not None and anchor.parent_block() is not block:
                anchor = anchor.parent_op()
            if anchor is None or block is None:
                continue
            positions = index.setdefault(id(block), {id(o): i for i, o in enumerate(block.ops)})
            if anchor is owner or positions[id(anchor)] < positions[id(owner)]:
                name = f"%{value.name_hint}" if value.name_hint else "a value"
                raise IRError(f"{where}: {user.name} uses {name} (defined by {owner.name}) before its definition")


class BnncOptMain(xDSLOptMain):
    instrument: Instrumentation
    plugin_paths: Sequence[str] = ()

    def register_all_dialects(self) -> None:
        self.ctx = make_context()

    def register_all_passes(self) -> None:
        from bnnc.plugins import load_plugins

        for name, factory in all_passes().items():
            self.register_pass(name, factory)
        for name, factory in load_plugins(self.plugin_paths).items():
            self.register_pass(name, factory)

    def prepare_input(self):  # type: ignore[override]
        try:
            return super().prepare_input()
        except ValueError as e:
            if "file extension" not in str(e):
                raise
            name = self.args.input_file
            raise BnncError(
                f"{name}: {str(e)[0].lower()}{str(e)[1:]}; bnnc opt reads textual IR (.mlir, or -f mlir)"
            ) from None

    def parse_chunk(self, chunk, file_extension, start_offset=0):  # type: ignore[override]
        """Parsed IR is verified before any pass runs, as mlir-opt does; absurd
        shapes are refused before parsing, which would allocate splat constants."""
        from bnnc.runtime.signature import check_ir_text_sizes

        data = chunk.read()
        text = data.decode() if isinstance(data, bytes) else data
        check_ir_text_sizes(text, self.get_input_name())
        chunk = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
        try:
            module = super().parse_chunk(chunk, file_extension, start_offset)
        except (ParseError, BnncError):
            raise
        except (KeyError, IndexError, AttributeError, TypeError, ValueError, RecursionError) as e:
            # xDSL's parser fails this way on some malformed inputs (e.g. a duplicated block label)
            raise IRError(f"malformed IR in {self.get_input_name()}: {type(e).__name__}: {e}") from None
        if module is not None and not self.args.disable_verify:
            module.verify()
            check_defined_before_use(module, self.get_input_name())
        return module

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.prog = "bnnc opt"  # not sys.argv[0] (bnnc, or cli.py under python -m)
        # documented here; opt_main takes it out of the arguments before parsing
        arg_parser.add_argument(
            "--load-pass-plugin",
            action="append",
            default=[],
            metavar="FILE.py",
            help="load the ModulePass classes in FILE.py so -p can name them",
        )
        arg_parser.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass")
        arg_parser.add_argument("--print-ir-after", action="append", default=[], metavar="PASS", help="print the IR after PASS")
        arg_parser.add_argument("--print-ir-before", action="append", default=[], metavar="PASS", help="print the IR before PASS")
        arg_parser.add_argument("--timing", action="store_true", help="report wall time per pass on stderr")

    def setup_pipeline(self) -> None:
        args = self.args
        self.instrument = Instrumentation(
            print_after_all=args.print_ir_after_all,
            print_after=set(args.print_ir_after),
            print_before=set(args.print_ir_before),
            timing=args.timing,
        )
        inst = self.instrument
        started = [0.0]

        def callback(previous: ModulePass | None, module: ModuleOp, next_pass: ModulePass | None) -> None:
            if previous is not None:
                inst.times.append((previous.name, time.perf_counter() - started[0]))
                if not args.disable_verify:
                    try:
                        module.verify()
                    except (VerifyException, DiagnosticException) as e:
                        raise PassError(f"pass '{previous.name}' produced invalid IR: {e}") from None
                if inst.print_after_all or previous.name in inst.print_after:
                    inst.dump("After", previous.name, module)
            if next_pass is not None:
                if next_pass.name in inst.print_before:
                    inst.dump("Before", next_pass.name, module)
                started[0] = time.perf_counter()

        try:
            self.pipeline = PassPipeline.parse_spec(self.available_passes, args.passes, callback)
        except Exception as e:
            raise PassError(f"cannot build pass pipeline '{args.passes}': {e}") from None


def split_plugin_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Take --load-pass-plugin=FILE (or --load-pass-plugin FILE) out of args:
    plugins must be registered before the pass pipeline is parsed."""
    rest: list[str] = []
    plugins: list[str] = []
    it = iter(args)
    for arg in it:
        if arg.startswith(("--load-pass-plugin=", "-load-pass-plugin=")):
            plugins.append(arg.split("=", 1)[1])
        elif arg in ("--load-pass-plugin", "-load-pass-plugin"):
            plugins.append(next(it, ""))
        else:
            rest.append(arg)
    return rest, plugins


def opt_main(args: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    args, plugins = split_plugin_args(args)
    try:
        BnncOptMain.plugin_paths = plugins
        main = BnncOptMain(description="bnnc opt: run passes on textual IR (--load-pass-plugin=FILE adds passes)", args=args)
        main.run()
        if main.instrument.timing:
            sys.stderr.write(main.instrument.report())
    except ParseError as e:
        print(f"bnnc: error: malformed IR: {e}", file=sys.stderr)
        return 2
    except (VerifyException, DiagnosticException) as e:
        print(f"bnnc: error: invalid IR: {e}", file=sys.stderr)
        return 2
    except PassFailedException as e:
        print(f"bnnc: error: a pass failed: {e}", file=sys.stderr)
        return 2
    except BnncError as e:
        print(f"bnnc: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the input file is missing, a directory, unreadable
        name = e.filename if e.filename is not None else "input"
        print(f"bnnc: error: cannot read {name}: {e.strerror or e}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as e:
        print(f"bnnc: error: the input is not UTF-8 text IR ({e.reason} at byte {e.start})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # an internal error: a short message, the traceback on request
        if os.environ.get("BNNC_TRACEBACK"):
            raise
        print(
            f"bnnc: internal error: {type(e).__name__}: {e}\n(set BNNC_TRACEBACK=1 for the traceback and please report it)",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(opt_main())
