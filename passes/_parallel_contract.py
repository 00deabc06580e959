"""The thread-pool contract between the passes that emit threaded calls and
the code generator that defines the pool (`bnnc.parallel_runtime`).

convert-bnn-to-loops marks the call of a threaded kernel with `bnnc.threads`
(pool size N) and `bnnc.blocks` (block count B, default N); the kernel takes
(block index, block count) as its last two parameters. lower-parallel-calls
gives each function with marked calls one pool: a zero-initialised internal
global `pool_global(fn)` of `pool_words(N)` i64 words that outlives the call
(its workers are started by the first call and parked between calls), and
turns the marked calls into calls of the pool functions below; the code
generator gives those functions their bodies, and a destructor that joins
the workers.

    void *__bnnc_pool_acquire(i64 *pool, i64 capacity)
        take the pool for this call, starting workers 1 .. capacity-1 if they
        are not running; null when another call holds it (this call then runs
        every block itself)
    void __bnnc_parallel_for(i64 *pool or null, void *(*fn)(void *), char *blocks, i64 n, i64 stride)
        run fn(blocks + t * stride) for t in [0, n), on the pool's threads
    void __bnnc_pool_release(i64 *pool or null)
        the call is over: the workers stop spinning and sleep
    void __bnnc_pool_stop(i64 *pool)
        join the workers (a later acquire starts new ones)

Pool words (each group on its own 64-byte line): [0] generation (an i32:
the futex word; -1 = stop), [1] held by a call, [2] workers asleep or about
to sleep, [8..11] the job (fn, blocks, n, stride), [16] next block
(generation << 32 | index), [24] blocks done, [32] workers started, [33]
capacity (0: not started), [34] the process that started them (a forked
child has the state but not the threads), [40 + w] worker w's pthread_t.
"""

from __future__ import annotations

# attributes on a threaded call (func.call, then llvm.call)
THREADS_ATTR = "bnnc.threads"
BLOCKS_ATTR = "bnnc.blocks"
# the largest pool and block count a call may ask for: each block becomes
# code and each thread a word of pool state, so a count read from IR (maybe
# hostile) is bounded before anything is built from it
MAX_THREADS = 1024
MAX_BLOCKS = 16 * MAX_THREADS


def count_error(attr: str, value: object, callee: str) -> str | None:
    """Why `attr = value` on a threaded call of @callee is unusable, or None."""
    limit = MAX_THREADS if attr == THREADS_ATTR else MAX_BLOCKS
    if isinstance(value, int) and 1 <= value <= limit:
        return None
    return f"{attr} = {value} on the call to @{callee} is outside 1..{limit}"

# the pool's entry points
ACQUIRE, PARALLEL_FOR, RELEASE, STOP = (
    "__bnnc_pool_acquire",
    "__bnnc_parallel_for",
    "__bnnc_pool_release",
    "__bnnc_pool_stop",
)

# word offsets of the pool state
GENERATION, HELD, SLEEPERS, JOB, NEXT, DONE, STARTED, CAPACITY, OWNER, THREAD_IDS = 0, 1, 2, 8, 16, 24, 32, 33, 34, 40
STOP_GENERATION = -1
# generations count modulo 2**31 (they must fit the i32 futex word and stay apart from STOP)
GENERATION_MASK = 0x7FFFFFFF


def pool_words(capacity: int) -> int:
    """Size in i64 words of the state of a pool of `capacity` threads."""
    return THREAD_IDS + capacity


def pool_global(function: str) -> str:
    """The symbol of the pool state of `function` (the function whose threaded calls use it)."""
    return f"{function}.pool"
