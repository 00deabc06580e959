"""The thread pool threaded models need, built with llvmlite's IR builder into
every module that uses it (so JIT code and AOT artifacts alike depend only on
libc's pthread_create / pthread_join / sched_yield).

A pool lives for one call of the model: its state is a block of i64 words on
the model function's stack (so concurrent calls of one model never share a
pool), its workers are started when the call begins and joined before it
returns, and between layers they spin on a generation counter. Handing a
layer to the pool then costs a few cache-line transfers instead of a
pthread_create + join per layer, which cost more than a small layer saves.

    void __bnnc_pool_start(i64 *pool, i64 n)     start workers 1 .. n-1
    void __bnnc_parallel_for(i64 *pool, void *(*fn)(void *), char *blocks, i64 n, i64 stride)
        run fn(blocks + t * stride) for t in [0, n): t = 0 on the calling
        thread, t >= 1 on worker t (inline when that worker could not start)
    void __bnnc_pool_stop(i64 *pool)             join the workers

Pool words (each group on its own 64-byte line): [0] generation (-1 = stop),
[8..11] the job (fn, blocks, n, stride), [16] workers still running the
job, [24] workers started, [25] capacity, [32 + 2w, 33 + 2w] worker w's (pool, w) argument,
[32 + 2 * capacity + w] worker w's pthread_t.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

START, PARALLEL_FOR, STOP = "__bnnc_pool_start", "__bnnc_parallel_for", "__bnnc_pool_stop"
WORKER = "__bnnc_pool_worker"

GENERATION, JOB, PENDING, STARTED, CAPACITY, SLOTS = 0, 8, 16, 24, 25, 32
STOP_GENERATION = -1
# Spins between sched_yield calls while waiting (a worker whose partner was
# descheduled by a busy host then gives its core away).
SPINS_PER_YIELD = 4096


def pool_words(capacity: int) -> int:
    """Size in i64 words of the state of a pool of `capacity` threads."""
    return SLOTS + 3 * capacity


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


def _define_worker(module: ir.Module, triple: str) -> ir.Function:
    """void *worker({pool, w}): run block w of every job until told to stop."""
    fn = _declare(module, WORKER, _JOB_TYPE)
    if not fn.is_declaration:
        return fn
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
    pool = b.inttoptr(e.load(fn.args[0], 0), e.ptr)
    w = e.load(fn.args[0], 1)
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
    with b.if_then(b.icmp_signed("<", w, e.load(pool, JOB + 2))):
        _run_block(e, e.load(pool, JOB), b.inttoptr(e.load(pool, JOB + 1), e.ptr), e.load(pool, JOB + 3), w)
    b.atomic_rmw("sub", e.word(pool, PENDING), e.const(1), "acq_rel")
    seen.add_incoming(generation[0], b.block)
    b.branch(loop)
    return fn


def _define_start(module: ir.Module, triple: str) -> None:
    fn = module.globals[START]
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
    pool, n = fn.args
    worker = _define_worker(module, triple)
    create = _declare(module, "pthread_create", ir.FunctionType(e.i32, [e.ptr, e.ptr, e.ptr, e.ptr]))
    for index in (GENERATION, PENDING, STARTED):
        e.store(0, pool, index)
    e.store(n, pool, CAPACITY)
    failed = fn.append_basic_block("failed")

    def spawn(w: ir.Value) -> None:
        slot = b.add(e.const(SLOTS), b.mul(w, e.const(2)))
        e.store(b.ptrtoint(pool, e.i64), pool, slot)
        e.store(w, pool, b.add(slot, e.const(1)))
        rc = b.call(create, [_thread_id(e, pool, w), ir.Constant(e.ptr, None), worker, e.word(pool, slot)])
        ok = fn.append_basic_block("started")
        b.cbranch(b.icmp_signed("==", rc, ir.Constant(e.i32, 0)), ok, failed)
        b.position_at_end(ok)
        e.store(w, pool, STARTED)

    e.for_range("spawn", e.const(1), n, spawn)
    b.ret_void()
    b.position_at_end(failed)  # the workers started so far serve; the call runs the rest inline
    b.ret_void()


def _thread_id(e: _Emitter, pool: ir.Value, w: ir.Value) -> ir.Value:
    capacity = e.load(pool, CAPACITY)
    return e.word(pool, e.b.add(e.b.add(e.const(SLOTS), e.b.mul(capacity, e.const(2))), w))


def _define_stop(module: ir.Module, triple: str) -> None:
    fn = module.globals[STOP]
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
    (pool,) = fn.args
    join = _declare(module, "pthread_join", ir.FunctionType(e.i32, [e.i64, e.ptr]))
    e.store(STOP_GENERATION, pool, GENERATION, "release")

    def reap(w: ir.Value) -> None:
        b.call(join, [b.load(_thread_id(e, pool, w), typ=e.i64), ir.Constant(e.ptr, None)])

    e.for_range("join", e.const(1), b.add(e.load(pool, STARTED), e.const(1)), reap)
    b.ret_void()


def _define_parallel_for(module: ir.Module, triple: str) -> None:
    fn = module.globals[PARALLEL_FOR]
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
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
    e.store(started, pool, PENDING)
    e.store(b.add(e.load(pool, GENERATION), e.const(1)), pool, GENERATION, "release")
    _run_block(e, body, blocks, stride, e.const(0))
    e.for_range("rest", b.add(started, e.const(1)), n, lambda t: _run_block(e, body, blocks, stride, t))
    e.wait_until("join", lambda: b.icmp_signed("==", e.load(pool, PENDING, "acquire"), e.const(0)))
    b.ret_void()


def define_thread_pool(module: ir.Module, triple: str = "") -> None:
    """Give the module's declarations of the pool functions their bodies
    (no-op when the module declares none)."""
    for name, define in ((START, _define_start), (PARALLEL_FOR, _define_parallel_for), (STOP, _define_stop)):
        fn = module.globals.get(name)
        if fn is not None and fn.is_declaration:
            define(module, triple)
