"""`bnnc opt`: xDSL's opt driver with the bnn dialect and every bnnc pass."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from xdsl.xdsl_opt_main import xDSLOptMain

from bnnc.context import make_context
from bnnc.passes.registry import all_passes


class BnncOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        self.ctx = make_context()

    def register_all_passes(self) -> None:
        for name, factory in all_passes().items():
            self.register_pass(name, factory)


def opt_main(args: Sequence[str] | None = None) -> int:
    BnncOptMain(description="bnnc opt: run passes on textual IR", args=args).run()
    return 0


if __name__ == "__main__":
    sys.exit(opt_main())
