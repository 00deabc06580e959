"""The thread pool threaded models need, built with llvmlite's IR builder into
every module that uses it (so JIT code and AOT artifacts alike depend only on
libc's pthread_create / pthread_join / sched_yield).

A pool lives for one call of the model: its state is a block of i64 words on
the model function's stack (so concurrent calls of one model never share a
pool), its workers are started when the call begins and joined before it
returns, and between layers they spin on a generation counter. Handing a
layer to the pool then costs a few cache-line transfers instead of a
pthread_create + join per layer, which cost more than a small layer saves.

A layer's work is n blocks (block t computes the rows that thread t of n
owns, so results do not depend on who runs it). The calling thread and the
workers claim blocks from a shared counter, so a worker that the OS has not
scheduled (a busy host, more threads than cores) delays nothing: the others
take its blocks. The counter carries the job's generation in its high half,
so a worker that wakes late can never claim a block of a newer job with a
stale job description.

The functions' signatures, the pool state's word layout and the call
attributes are the contract with the passes (lower-parallel-calls allocates
the state and calls the functions): `bnnc.passes._parallel_contract`.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

from bnnc.passes._parallel_contract import (
    CAPACITY,
    DONE,
    GENERATION,
    JOB,
    NEXT,
    PARALLEL_FOR,
    START,
    STARTED,
    STOP,
    STOP_GENERATION,
    THREAD_IDS,
)

WORKER = "__bnnc_pool_worker"
# Spins between sched_yield calls while waiting (about a microsecond: a
# thread waiting for a descheduled partner soon gives its core away).
SPINS_PER_YIELD = 2048


def _declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, fnty, name)


class _Emitter:
    """Builds one runtime function: loops, word access and spin-waits."""

    ptr, i64, i32 = ir.PointerType(), ir.IntType(64), ir.IntType(32)

    def __init__(self, module: ir.Module, fn: ir.Function, triple: str) -> None:
        self.module, self.fn = module, fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.triple = triple

    def const(self, value: int) -> ir.Constant:
        return ir.Constant(self.i64, value)

    def word(self, pool: ir.Value, index: ir.Value | int) -> ir.Value:
        index = self.const(index) if isinstance(index, int) else index
        return self.b.gep(pool, [index], source_etype=self.i64)

    def load(self, pool: ir.Value, index: ir.Value | int, ordering: str | None = None) -> ir.Value:
        if ordering is None:
            return self.b.load(self.word(pool, index), typ=self.i64)
        return self.b.load_atomic(self.word(pool, index), ordering, 8, typ=self.i64)

    def store(self, value: ir.Value | int, pool: ir.Value, index: ir.Value | int, ordering: str | None = None) -> None:
        value = self.const(value) if isinstance(value, int) else value
        if ordering is None:
            self.b.store(value, self.word(pool, index))
        else:
            # an atomic exchange: llvmlite's store_atomic needs typed pointers
            self.b.atomic_rmw("xchg", self.word(pool, index), value, ordering)

    def for_range(self, name: str, lo: ir.Value, hi: ir.Value, body: Callable[[ir.Value], None]) -> None:
        b = self.b
        head, step, done = (self.fn.append_basic_block(f"{name}.{s}") for s in ("head", "body", "done"))
        start = b.block
        b.branch(head)
        b.position_at_end(head)
        t = b.phi(self.i64, name=f"{name}.t")
        t.add_incoming(lo, start)
        b.cbranch(b.icmp_signed("<", t, hi), step, done)
        b.position_at_end(step)
        body(t)
        t.add_incoming(b.add(t, self.const(1)), b.block)
        b.branch(head)
        b.position_at_end(done)

    def wait_until(self, name: str, done: Callable[[], ir.Value]) -> None:
        """Spin (with the CPU's pause hint) until done() holds, yielding the
        core every SPINS_PER_YIELD spins."""
        b = self.b
        head, body, out = (self.fn.append_basic_block(f"{name}.{s}") for s in ("head", "spin", "done"))
        start = b.block
        b.branch(head)
        b.position_at_end(head)
        spins = b.phi(self.i64, name=f"{name}.spins")
        spins.add_incoming(self.const(0), start)
        b.cbranch(done(), out, body)
        b.position_at_end(body)
        self._pause()
        with b.if_then(b.icmp_unsigned("==", b.and_(spins, self.const(SPINS_PER_YIELD - 1)), self.const(0))):
            b.call(_declare(self.module, "sched_yield", ir.FunctionType(self.i32, [])), [])
        spins.add_incoming(b.add(spins, self.const(1)), b.block)
        b.branch(head)
        b.position_at_end(out)

    def _pause(self) -> None:
        if self.triple.startswith(("x86_64", "i686")):
            b = self.b
            b.call(_declare(self.module, "llvm.x86.sse2.pause", ir.FunctionType(ir.VoidType(), [])), [])
        elif self.triple.startswith("aarch64"):
            hint = _declare(self.module, "llvm.aarch64.hint", ir.FunctionType(ir.VoidType(), [self.i32]))
            self.b.call(hint, [ir.Constant(self.i32, 1)])  # YIELD


_JOB_TYPE = ir.FunctionType(ir.PointerType(), [ir.PointerType()])


def _run_block(e: _Emitter, fn: ir.Value, blocks: ir.Value, stride: ir.Value, t: ir.Value) -> None:
    fn = e.b.inttoptr(fn, ir.PointerType(_JOB_TYPE)) if fn.type == e.i64 else fn
    e.b.call(fn, [e.b.gep(blocks, [e.b.mul(t, stride)], source_etype=ir.IntType(8))])


def _claim_blocks(e: _Emitter, pool: ir.Value, generation: ir.Value) -> None:
    """Run blocks of job `generation` while its counter has unclaimed ones;
    count each finished block in DONE."""
    b, fn = e.b, e.fn
    head, claim, run, out = (fn.append_basic_block(f"claim.{s}") for s in ("head", "try", "run", "done"))
    b.branch(head)
    b.position_at_end(head)
    current = e.load(pool, NEXT, "acquire")
    index = b.and_(current, e.const(0xFFFFFFFF))
    mine = b.icmp_signed("==", b.lshr(current, e.const(32)), generation)
    b.cbranch(b.and_(mine, b.icmp_signed("<", index, e.load(pool, JOB + 2))), claim, out)
    b.position_at_end(claim)
    swapped = b.cmpxchg(e.word(pool, NEXT), current, b.add(current, e.const(1)), "acq_rel", "acquire")
    b.cbranch(b.extract_value(swapped, 1), run, head)
    b.position_at_end(run)
    _run_block(e, e.load(pool, JOB), b.inttoptr(e.load(pool, JOB + 1), e.ptr), e.load(pool, JOB + 3), index)
    b.atomic_rmw("add", e.word(pool, DONE), e.const(1), "acq_rel")
    b.branch(head)
    b.position_at_end(out)


def _define_worker(module: ir.Module, triple: str) -> ir.Function:
    """void *worker(pool): help with every job until told to stop."""
    fn = _declare(module, WORKER, _JOB_TYPE)
    if not fn.is_declaration:
        return fn
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
    pool = fn.args[0]
    entry = b.block
    loop = fn.append_basic_block("jobs")
    b.branch(loop)
    b.position_at_end(loop)
    seen = b.phi(e.i64, name="seen")
    seen.add_incoming(e.const(0), entry)
    generation: list[ir.Value] = []

    def changed() -> ir.Value:
        generation[:] = [e.load(pool, GENERATION, "acquire")]
        return b.icmp_signed("!=", generation[0], seen)

    e.wait_until("wait", changed)
    with b.if_then(b.icmp_signed("==", generation[0], e.const(STOP_GENERATION)), likely=False):
        b.ret(ir.Constant(e.ptr, None))
    _claim_blocks(e, pool, generation[0])
    seen.add_incoming(generation[0], b.block)
    b.branch(loop)
    return fn


def _define_start(e: _Emitter) -> None:
    module, fn, b = e.module, e.fn, e.b
    pool, capacity = fn.args
    worker = _define_worker(module, e.triple)
    create = _declare(module, "pthread_create", ir.FunctionType(e.i32, [e.ptr, e.ptr, e.ptr, e.ptr]))
    for index in (GENERATION, NEXT, DONE, STARTED):
        e.store(0, pool, index)
    e.store(capacity, pool, CAPACITY)
    failed = fn.append_basic_block("failed")

    def spawn(w: ir.Value) -> None:
        tid = e.word(pool, b.add(e.const(THREAD_IDS), w))
        rc = b.call(create, [tid, ir.Constant(e.ptr, None), worker, pool])
        ok = fn.append_basic_block("started")
        b.cbranch(b.icmp_signed("==", rc, ir.Constant(e.i32, 0)), ok, failed)
        b.position_at_end(ok)
        e.store(w, pool, STARTED)

    e.for_range("spawn", e.const(1), capacity, spawn)
    b.ret_void()
    b.position_at_end(failed)  # the workers started so far serve
    b.ret_void()


def _define_stop(e: _Emitter) -> None:
    module, fn, b = e.module, e.fn, e.b
    (pool,) = fn.args
    join = _declare(module, "pthread_join", ir.FunctionType(e.i32, [e.i64, e.ptr]))
    e.store(STOP_GENERATION, pool, GENERATION, "release")

    def reap(w: ir.Value) -> None:
        tid = e.load(pool, b.add(e.const(THREAD_IDS), w))
        b.call(join, [tid, ir.Constant(e.ptr, None)])

    e.for_range("join", e.const(1), b.add(e.load(pool, STARTED), e.const(1)), reap)
    b.ret_void()


def _define_parallel_for(e: _Emitter) -> None:
    fn, b = e.fn, e.b
    pool, body, blocks, n, stride = fn.args
    body.type = ir.PointerType(_JOB_TYPE)  # still prints as `ptr`; lets llvmlite call through it
    started = e.load(pool, STARTED)
    inline = fn.append_basic_block("inline")
    pooled = fn.append_basic_block("pooled")
    b.cbranch(b.or_(b.icmp_signed("==", started, e.const(0)), b.icmp_signed("<=", n, e.const(1))), inline, pooled)

    b.position_at_end(inline)
    e.for_range("inline", e.const(0), n, lambda t: _run_block(e, body, blocks, stride, t))
    b.ret_void()

    b.position_at_end(pooled)
    for offset, value in enumerate((b.ptrtoint(body, e.i64), b.ptrtoint(blocks, e.i64), n, stride)):
        e.store(value, pool, JOB + offset)
    generation = b.add(e.load(pool, GENERATION), e.const(1))
    e.store(0, pool, DONE)
    e.store(b.shl(generation, e.const(32)), pool, NEXT)
    e.store(generation, pool, GENERATION, "release")
    _claim_blocks(e, pool, generation)
    e.wait_until("finish", lambda: b.icmp_signed("==", e.load(pool, DONE, "acquire"), n))
    b.ret_void()


def define_thread_pool(module: ir.Module, triple: str = "") -> None:
    """Give the module's declarations of the pool functions their bodies
    (no-op when the module declares none)."""
    for name, define in ((START, _define_start), (PARALLEL_FOR, _define_parallel_for), (STOP, _define_stop)):
        fn = module.globals.get(name)
        if fn is not None and fn.is_declaration:
            fn.linkage = "internal"
            define(_Emitter(module, fn, triple))
