"""`__bnnc_parallel_for`: the one runtime routine threaded models need, built
with llvmlite's IR builder into every module that calls it (so JIT code and
AOT artifacts alike depend only on libc's pthread_create/pthread_join).

    void __bnnc_parallel_for(void *(*fn)(void *), char *blocks, i64 n, i64 stride)

runs fn(blocks + t * stride) for t in [0, n): t >= 1 on new threads, t = 0 on
the calling thread; a thread that cannot be created runs inline; then joins.
"""

from __future__ import annotations

import llvmlite.ir as ir

NAME = "__bnnc_parallel_for"


def _declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, fnty, name)


def define_parallel_for(module: ir.Module) -> None:
    """Give the module's declaration of __bnnc_parallel_for its body (no-op if absent)."""
    fn = module.globals.get(NAME)
    if fn is None or not fn.is_declaration:
        return
    ptr, i64, i32, i8 = ir.PointerType(), ir.IntType(64), ir.IntType(32), ir.IntType(8)
    create = _declare(module, "pthread_create", ir.FunctionType(i32, [ptr, ptr, ptr, ptr]))
    join = _declare(module, "pthread_join", ir.FunctionType(i32, [i64, ptr]))
    work_ty = ir.FunctionType(ptr, [ptr])
    fn.linkage = "internal"
    body, blocks, n, stride = fn.args
    body.type = ir.PointerType(work_ty)  # still prints as `ptr`; lets llvmlite call through it
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tids = b.alloca(i64, n, name="tids")
    started = b.alloca(i8, n, name="started")
    null = ir.Constant(ptr, None)
    one, zero = ir.Constant(i64, 1), ir.Constant(i64, 0)

    def counted_loop(name: str, emit_body) -> None:
        head = fn.append_basic_block(f"{name}.head")
        step = fn.append_basic_block(f"{name}.body")
        done = fn.append_basic_block(f"{name}.done")
        start = b.block
        b.branch(head)
        b.position_at_end(head)
        t = b.phi(i64, name=f"{name}.t")
        t.add_incoming(one, start)
        b.cbranch(b.icmp_signed("<", t, n), step, done)
        b.position_at_end(step)
        emit_body(t)
        t.add_incoming(b.add(t, one), b.block)
        b.branch(head)
        b.position_at_end(done)

    def spawn(t: ir.Value) -> None:
        arg = b.gep(blocks, [b.mul(t, stride)], source_etype=i8)
        rc = b.call(create, [b.gep(tids, [t], source_etype=i64), null, body, arg])
        ok = b.icmp_signed("==", rc, ir.Constant(i32, 0))
        b.store(b.zext(ok, i8), b.gep(started, [t], source_etype=i8))
        with b.if_then(b.not_(ok)):
            b.call(body, [arg])

    def reap(t: ir.Value) -> None:
        flag = b.load(b.gep(started, [t], source_etype=i8), typ=i8)
        with b.if_then(b.icmp_signed("!=", flag, ir.Constant(i8, 0))):
            b.call(join, [b.load(b.gep(tids, [t], source_etype=i64), typ=i64), null])

    counted_loop("spawn", spawn)
    b.call(body, [b.gep(blocks, [zero], source_etype=i8)])
    counted_loop("join", reap)
    b.ret_void()
