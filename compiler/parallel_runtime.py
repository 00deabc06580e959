"""The thread pool threaded models need, built with llvmlite's IR builder into
every module that uses it (so JIT code and AOT artifacts alike depend only on
libc: pthread_create / pthread_join / sched_yield, and syscall for the futex).

A model's pool outlives a call: its state is an internal global of the
module (lower-parallel-calls allocates it), its workers are started by the
first call and then kept. During a call they spin on a generation counter
between layers (handing a layer over costs a few cache-line transfers);
shortly after the call returns (SPINS_AFTER_CALL: the next call of a model
called back to back finds them awake), or after spinning for a while, they
sleep on a Linux futex on that counter, so an idle model costs no CPU, and
the next job wakes them with one futex_wake (only when one of them sleeps).

A call takes the pool with a compare-and-swap; a call of the same model
made while another holds it runs all its blocks on its own thread (results
do not depend on who runs a block), so calls stay reentrant.

A layer's work is n blocks (block t computes the rows that block t of n
owns, so results do not depend on who runs it). The calling thread and the
workers claim blocks from a shared counter, so a worker that the OS has not
scheduled (a busy host, more threads than cores) delays nothing: the others
take its blocks. The counter carries the job's generation in its high half,
so a worker that wakes late can never claim a block of a newer job with a
stale job description.

The workers run code of the module, so they are joined before the code goes
away: `<entry>_stop_threads` (bnnc.runtime.compiled_model.stop_threads_symbol)
stops them; it is exported for loaders that free code (the JIT runtime calls
it when a CompiledModel is collected) and registered in llvm.global_dtors,
so a shared library joins its workers when it is unloaded or the process exits.

The functions' signatures, the pool state's word layout and the call
attributes are the contract with the passes (lower-parallel-calls allocates
the state and calls the functions): `bnnc.passes._parallel_contract`.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

from bnnc.passes._parallel_contract import (
    ACQUIRE,
    CAPACITY,
    DONE,
    GENERATION,
    GENERATION_MASK,
    HELD,
    JOB,
    NEXT,
    OWNER,
    PARALLEL_FOR,
    RELEASE,
    SLEEPERS,
    STARTED,
    STOP,
    STOP_GENERATION,
    THREAD_IDS,
    pool_global,
)
from bnnc.runtime.compiled_model import stop_threads_symbol

WORKER, START = "__bnnc_pool_worker", "__bnnc_pool_start"
# Spins between sched_yield calls while waiting (a spin is one pause hint:
# ~27 ns on Zen 4, so ~55 us; a thread waiting for a descheduled partner
# soon gives its core away).
SPINS_PER_YIELD = 2048
# A worker spins at most this long for the next layer of a running call
# before it sleeps (a call's layers follow each other within microseconds;
# a long single-threaded stretch should not burn a core): ~0.9 ms.
SPINS_BEFORE_SLEEP = 16 * SPINS_PER_YIELD
# After a call returns, a worker spins this long (~110 us) before it sleeps:
# a futex wake-up takes tens of microseconds on a virtual machine, as long
# as a small layer's whole share, so a model called back to back (a
# stream of frames, a benchmark) would otherwise run slower on 2 threads
# than on 1 (128ch@28x28 alone: 0.106 ms on 1 thread, 0.117 on 2; 0.055
# with this grace). An idle model still sleeps within it.
SPINS_AFTER_CALL = 2 * SPINS_PER_YIELD

# Linux futex(2): the syscall number per architecture (the first component
# of the triple); FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE.
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "riscv64": 98, "arm": 240, "armv7": 240, "i686": 240, "i386": 240}
_FUTEX_WAIT, _FUTEX_WAKE = 128, 129
_WAKE_ALL = 0x7FFFFFFF


def _declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, fnty, name)


class _Emitter:
    """Builds one runtime function: loops, word access and waits."""

    ptr, i64, i32 = ir.PointerType(), ir.IntType(64), ir.IntType(32)

    def __init__(self, module: ir.Module, fn: ir.Function, triple: str) -> None:
        self.module, self.fn = module, fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.triple = triple
        arch = triple.split("-", 1)[0]
        self.sys_futex = _SYS_FUTEX.get(arch) if "-linux" in triple else None
        self.long = self.i64 if arch in ("x86_64", "aarch64", "riscv64") else self.i32

    def const(self, value: int, typ: ir.IntType | None = None) -> ir.Constant:
        return ir.Constant(typ or self.i64, value)

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

    def generation(self, pool: ir.Value, ordering: str = "acquire") -> ir.Value:
        """The generation word (an i32, the futex word), sign-extended."""
        return self.b.sext(self.b.load_atomic(self.word(pool, GENERATION), ordering, 4, typ=self.i32), self.i64)

    def set_generation(self, pool: ir.Value, value: ir.Value | int) -> None:
        value = self.const(value, self.i32) if isinstance(value, int) else self.b.trunc(value, self.i32)
        self.b.atomic_rmw("xchg", self.word(pool, GENERATION), value, "seq_cst")

    def futex(self, pool: ir.Value, op: int, value: ir.Value) -> None:
        """futex(&pool[GENERATION], op, value): sleep while the word equals
        value (FUTEX_WAIT) or wake value sleepers (FUTEX_WAKE). Without a
        futex (not Linux) a sleeper yields its core instead."""
        if self.sys_futex is None:
            if op == _FUTEX_WAIT:
                self.yield_core()
            return
        syscall = _declare(self.module, "syscall", ir.FunctionType(self.long, [self.long], var_arg=True))
        long_value = self.b.trunc(value, self.long) if self.long != self.i64 else value
        args = [self.const(self.sys_futex, self.long), self.word(pool, GENERATION), self.const(op, self.long)]
        self.b.call(syscall, [*args, long_value, ir.Constant(self.ptr, None)])

    def pid(self) -> ir.Value:
        """getpid(), as i64."""
        getpid = _declare(self.module, "getpid", ir.FunctionType(self.i32, []))
        return self.b.sext(self.b.call(getpid, []), self.i64)

    def yield_core(self) -> None:
        self.b.call(_declare(self.module, "sched_yield", ir.FunctionType(self.i32, [])), [])

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

    def wait_until(
        self,
        name: str,
        done: Callable[[], ir.Value],
        sleep: Callable[[ir.Value], ir.Value] | None = None,
        on_sleep: Callable[[], None] | None = None,
    ) -> None:
        """Spin (with the CPU's pause hint) until done() holds, yielding the
        core every SPINS_PER_YIELD spins. With `sleep`, sleep(spins) says on
        each spin whether to stop spinning: then on_sleep() runs (it sleeps)
        and spinning starts over."""
        b = self.b
        head, body, out = (self.fn.append_basic_block(f"{name}.{s}") for s in ("head", "spin", "done"))
        start = b.block
        b.branch(head)
        b.position_at_end(head)
        spins = b.phi(self.i64, name=f"{name}.spins")
        spins.add_incoming(self.const(0), start)
        b.cbranch(done(), out, body)
        b.position_at_end(body)
        if sleep is not None and on_sleep is not None:
            asleep, awake = (self.fn.append_basic_block(f"{name}.{s}") for s in ("sleep", "awake"))
            b.cbranch(sleep(spins), asleep, awake)
            b.position_at_end(asleep)
            on_sleep()
            spins.add_incoming(self.const(0), b.block)
            b.branch(head)
            b.position_at_end(awake)
        self._pause()
        with b.if_then(b.icmp_unsigned("==", b.and_(spins, self.const(SPINS_PER_YIELD - 1)), self.const(0))):
            self.yield_core()
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
    """void *worker(pool): help with every job until told to stop; spin
    while a call holds the pool (for SPINS_BEFORE_SLEEP at most) and for
    SPINS_AFTER_CALL after it, then sleep."""
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
        generation[:] = [e.generation(pool)]
        return b.icmp_signed("!=", generation[0], seen)

    def sleep(spins: ir.Value) -> ir.Value:
        idle = b.icmp_signed("==", e.load(pool, HELD, "monotonic"), e.const(0))
        idle = b.and_(idle, b.icmp_signed(">=", spins, e.const(SPINS_AFTER_CALL)))
        return b.or_(idle, b.icmp_signed(">=", spins, e.const(SPINS_BEFORE_SLEEP)))

    def sleep_body() -> None:
        # Announce the sleep before the last look at the generation; the
        # poster bumps the generation before it counts sleepers (both seq_cst),
        # so either this thread sees the new job or the poster wakes it (and a
        # wake between the look and the wait makes the futex return at once).
        b.atomic_rmw("add", e.word(pool, SLEEPERS), e.const(1), "seq_cst")
        with b.if_then(b.icmp_signed("==", e.generation(pool, "seq_cst"), seen)):
            e.futex(pool, _FUTEX_WAIT, b.trunc(seen, e.long) if e.long != e.i64 else seen)
        b.atomic_rmw("sub", e.word(pool, SLEEPERS), e.const(1), "seq_cst")

    e.wait_until("wait", changed, sleep, sleep_body)
    with b.if_then(b.icmp_signed("==", generation[0], e.const(STOP_GENERATION)), likely=False):
        b.ret(ir.Constant(e.ptr, None))
    _claim_blocks(e, pool, generation[0])
    seen.add_incoming(generation[0], b.block)
    b.branch(loop)
    return fn


def _define_start(module: ir.Module, triple: str) -> ir.Function:
    """void start(pool, capacity): reset the state, start workers 1 .. capacity-1
    (a worker that cannot be started leaves its blocks to the others)."""
    fn = _declare(module, START, ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.IntType(64)]))
    if not fn.is_declaration:
        return fn
    fn.linkage = "internal"
    e = _Emitter(module, fn, triple)
    b = e.b
    pool, capacity = fn.args
    worker = _define_worker(module, triple)
    create = _declare(module, "pthread_create", ir.FunctionType(e.i32, [e.ptr, e.ptr, e.ptr, e.ptr]))
    for index in (GENERATION, SLEEPERS, NEXT, DONE, STARTED):
        e.store(0, pool, index)
    e.store(capacity, pool, CAPACITY)
    e.store(e.pid(), pool, OWNER)
    failed = fn.append_basic_block("failed")

    def spawn(w: ir.Value) -> None:
        tid = e.word(pool, b.add(e.const(THREAD_IDS), w))
        rc = b.call(create, [tid, ir.Constant(e.ptr, None), worker, pool])
        ok = fn.append_basic_block("started")
        b.cbranch(b.icmp_signed("==", rc, ir.Constant(e.i32, 0)), ok, failed)
        b.position_at_end(ok)
        e.store(w, pool, STARTED, "release")

    e.for_range("spawn", e.const(1), capacity, spawn)
    b.ret_void()
    b.position_at_end(failed)  # the workers started so far serve
    b.ret_void()
    return fn


def _take(e: _Emitter, pool: ir.Value) -> ir.Value:
    """Try to take the pool (HELD 0 -> 1); an i1, true on success."""
    swapped = e.b.cmpxchg(e.word(pool, HELD), e.const(0), e.const(1), "acquire", "monotonic")
    return e.b.extract_value(swapped, 1)


def _define_acquire(e: _Emitter) -> None:
    fn, b = e.fn, e.b
    pool, capacity = fn.args
    busy, mine = fn.append_basic_block("busy"), fn.append_basic_block("mine")
    b.cbranch(_take(e, pool), mine, busy)
    b.position_at_end(busy)
    b.ret(ir.Constant(e.ptr, None))
    b.position_at_end(mine)
    # Not started, or started by the process this one was forked from (whose
    # workers did not come along): start workers.
    unstarted = b.icmp_signed("==", e.load(pool, CAPACITY), e.const(0))
    with b.if_then(b.or_(unstarted, b.icmp_signed("!=", e.load(pool, OWNER), e.pid())), likely=False):
        b.call(_define_start(e.module, e.triple), [pool, capacity])
    # Wake sleeping workers now: they spin while the call holds the pool, so
    # the first threaded layer does not wait for a futex wake-up.
    with b.if_then(b.icmp_signed("!=", e.load(pool, SLEEPERS, "seq_cst"), e.const(0))):
        e.futex(pool, _FUTEX_WAKE, e.const(_WAKE_ALL, e.long))
    b.ret(pool)


def _define_release(e: _Emitter) -> None:
    b = e.b
    (pool,) = e.fn.args
    with b.if_then(b.icmp_unsigned("!=", b.ptrtoint(pool, e.i64), e.const(0))):
        e.store(0, pool, HELD, "release")
    b.ret_void()


def _define_stop(e: _Emitter) -> None:
    module, fn, b = e.module, e.fn, e.b
    (pool,) = fn.args
    join = _declare(module, "pthread_join", ir.FunctionType(e.i32, [e.i64, e.ptr]))
    forked = b.and_(
        b.icmp_signed("!=", e.load(pool, CAPACITY), e.const(0)), b.icmp_signed("!=", e.load(pool, OWNER), e.pid())
    )
    with b.if_then(forked, likely=False):  # the workers are the parent's: nothing to join or wait for
        for index in (STARTED, CAPACITY, HELD):
            e.store(0, pool, index)
        b.ret_void()
    e.wait_until("take", lambda: _take(e, pool))  # wait for a running call to finish
    with b.if_then(b.icmp_signed("!=", e.load(pool, CAPACITY), e.const(0))):
        e.set_generation(pool, STOP_GENERATION)
        e.futex(pool, _FUTEX_WAKE, e.const(_WAKE_ALL, e.long))

        def reap(w: ir.Value) -> None:
            tid = e.load(pool, b.add(e.const(THREAD_IDS), w))
            b.call(join, [tid, ir.Constant(e.ptr, None)])

        e.for_range("join", e.const(1), b.add(e.load(pool, STARTED), e.const(1)), reap)
        e.store(0, pool, STARTED)
        e.store(0, pool, CAPACITY)
    e.store(0, pool, HELD, "release")
    b.ret_void()


def _define_parallel_for(e: _Emitter) -> None:
    fn, b = e.fn, e.b
    pool, body, blocks, n, stride = fn.args
    body.type = ir.PointerType(_JOB_TYPE)  # still prints as `ptr`; lets llvmlite call through it
    inline = fn.append_basic_block("inline")
    check, pooled = fn.append_basic_block("check"), fn.append_basic_block("pooled")
    b.cbranch(b.icmp_unsigned("==", b.ptrtoint(pool, e.i64), e.const(0)), inline, check)
    b.position_at_end(check)
    started = e.load(pool, STARTED, "acquire")
    b.cbranch(b.or_(b.icmp_signed("==", started, e.const(0)), b.icmp_signed("<=", n, e.const(1))), inline, pooled)

    b.position_at_end(inline)
    e.for_range("inline", e.const(0), n, lambda t: _run_block(e, body, blocks, stride, t))
    b.ret_void()

    b.position_at_end(pooled)
    for offset, value in enumerate((b.ptrtoint(body, e.i64), b.ptrtoint(blocks, e.i64), n, stride)):
        e.store(value, pool, JOB + offset)
    generation = b.and_(b.add(e.generation(pool, "monotonic"), e.const(1)), e.const(GENERATION_MASK))
    e.store(0, pool, DONE)
    e.store(b.shl(generation, e.const(32)), pool, NEXT)
    e.set_generation(pool, generation)
    with b.if_then(b.icmp_signed("!=", e.load(pool, SLEEPERS, "seq_cst"), e.const(0)), likely=False):
        e.futex(pool, _FUTEX_WAKE, e.const(_WAKE_ALL, e.long))
    _claim_blocks(e, pool, generation)
    e.wait_until("finish", lambda: b.icmp_signed("==", e.load(pool, DONE, "acquire"), n))
    b.ret_void()


def _define_stop_threads(module: ir.Module, pool: ir.GlobalVariable, entry: str) -> ir.Function:
    """`<entry>_stop_threads()`: join the workers of `entry`'s pool (exported
    for the loaders, and run as a static destructor)."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), stop_threads_symbol(entry))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(module.globals[STOP], [b.bitcast(pool, ir.PointerType())])
    b.ret_void()
    return fn


def _register_destructors(module: ir.Module, functions: list[ir.Function]) -> None:
    """llvm.global_dtors: run `functions` when the code is unloaded or the process exits."""
    slot = ir.LiteralStructType([ir.IntType(32), ir.PointerType(), ir.PointerType()])
    null = ir.Constant(ir.PointerType(), None)
    entries = [ir.Constant(slot, [ir.Constant(ir.IntType(32), 65535), fn, null]) for fn in functions]
    dtors = ir.GlobalVariable(module, ir.ArrayType(slot, len(entries)), "llvm.global_dtors")
    dtors.linkage = "appending"
    dtors.initializer = ir.Constant(dtors.value_type, entries)


def define_thread_pool(module: ir.Module, triple: str = "") -> None:
    """Give the module's declarations of the pool functions their bodies, and
    each function with a pool its `_stop_threads` destructor (no-op when the
    module declares none)."""
    for name, define in (
        (ACQUIRE, _define_acquire),
        (PARALLEL_FOR, _define_parallel_for),
        (RELEASE, _define_release),
        (STOP, _define_stop),
    ):
        fn = module.globals.get(name)
        if fn is not None and isinstance(fn, ir.Function) and fn.is_declaration:
            fn.linkage = "internal"
            define(_Emitter(module, fn, triple))
    if STOP not in module.globals:
        return
    stops = []
    for fn in [g for g in module.globals.values() if isinstance(g, ir.Function) and not g.is_declaration]:
        pool = module.globals.get(pool_global(fn.name))
        if isinstance(pool, ir.GlobalVariable):
            stops.append(_define_stop_threads(module, pool, fn.name))
    if stops:
        assert "llvm.global_dtors" not in module.globals, "the thread pool expects to own llvm.global_dtors"
        _register_destructors(module, stops)
