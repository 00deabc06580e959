"""`bnnc opt`: xDSL's opt driver with the bnn dialect and every bnnc pass,
plus MLIR-style instrumentation (--print-ir-after-all, --print-ir-after=PASS,
--print-ir-before=PASS, --timing) and one-line errors with exit code 2. The
flags, the pass manager and the error handling are those of `bnnc compile`
(cli_common.py, pipeline.apply_passes)."""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Sequence

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import PassPipeline
from xdsl.utils.exceptions import ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from bnnc.cli_common import EXIT_OK, add_instrumentation_args, instrumentation_from_args, run_command
from bnnc.context import make_context
from bnnc.errors import BnncError, IRError, PassError
from bnnc.passes.registry import all_passes
from bnnc.pipeline import Instrumentation, apply_passes


def _harden_xdsl_lexer() -> None:
    """xDSL's string-literal regex nests `+` inside `*`: an unterminated string
    on a long line backtracks exponentially (a hang). Same language, linear time."""
    from xdsl.utils.mlir_lexer import MLIRLexer

    MLIRLexer._unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')


_harden_xdsl_lexer()


def check_all_values_defined(module: ModuleOp, where: str) -> None:
    """Refuse a use that xDSL's parser left as a forward reference: a name used
    in an outer region and defined only inside a nested one passes its check
    for undefined names, and the verifier then fails on the value's owner
    (ValueError, not a diagnostic)."""
    from xdsl.parser.core import ForwardDeclaredValue

    from bnnc.errors import IRError

    for user in module.walk():
        for i, value in enumerate(user.operands):
            if isinstance(value, ForwardDeclaredValue):
                name = f"%{value.name_hint}" if value.name_hint else "a value"
                raise IRError(f"{where}: {user.name} (operand {i}) uses {name} that is not defined in its scope")


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
        name = self.args.input_file
        if name is not None and self.args.frontend is None:
            extension = os.path.splitext(name)[1].replace(".", "")  # as xDSL's get_input_stream
            if extension not in self.available_frontends:
                raise BnncError(
                    f"{name}: unrecognized file extension '{extension}'; bnnc opt reads textual IR (.mlir, or -f mlir)"
                )
        return super().prepare_input()

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
        except (
            KeyError, IndexError, AttributeError, TypeError, ValueError, RecursionError, NotImplementedError,
            ArithmeticError,
        ) as e:
            # xDSL's parser fails this way on some malformed inputs (e.g. a duplicated block
            # label; a dense array of i69 elements: "Format not implemented for i69"; an
            # integer literal wider than its type: OverflowError in int.to_bytes)
            raise IRError(f"malformed IR in {self.get_input_name()}: {type(e).__name__}: {e}") from None
        if module is not None:
            check_all_values_defined(module, self.get_input_name())
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
        add_instrumentation_args(arg_parser)

    def setup_pipeline(self) -> None:
        self.instrument = instrumentation_from_args(self.args)
        try:
            self.pipeline = PassPipeline.parse_spec(self.available_passes, self.args.passes)
        except Exception as e:  # xDSL raises several kinds for a bad spec
            raise PassError(f"cannot build pass pipeline '{self.args.passes}': {e}") from None

    def apply_passes(self, prog: ModuleOp) -> None:
        """bnnc compile's pass manager (pipeline.apply_passes), not xDSL's."""
        verify = not self.args.disable_verify
        apply_passes(prog, self.pipeline.passes, self.ctx, self.instrument, verify_each=verify, verify=verify)


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

    def command() -> int:
        BnncOptMain.plugin_paths = plugins
        main = BnncOptMain(description="bnnc opt: run passes on textual IR (--load-pass-plugin=FILE adds passes)", args=args)
        main.run()
        if main.instrument.timing:
            sys.stderr.write(main.instrument.report())
        return EXIT_OK

    return run_command(command)


if __name__ == "__main__":
    sys.exit(opt_main())
