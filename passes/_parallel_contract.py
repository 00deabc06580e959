"""The thread-pool contract between the passes that emit threaded calls and
the code generator that defines the pool (`bnnc.parallel_runtime`).

convert-bnn-to-loops marks the call of a threaded kernel with `bnnc.threads`
(pool size N) and `bnnc.blocks` (block count B, default N); the kernel takes
(block index, block count) as its last two parameters. lower-parallel-calls
turns the marked call into calls of the three pool functions below, on pool
state of `pool_words(N)` i64 words that it allocates on the caller's stack;
the code generator gives those functions their bodies.

    void __bnnc_pool_start(i64 *pool, i64 capacity)   start workers 1 .. capacity-1
    void __bnnc_parallel_for(i64 *pool, void *(*fn)(void *), char *blocks, i64 n, i64 stride)
        run fn(blocks + t * stride) for t in [0, n), on the pool's threads
    void __bnnc_pool_stop(i64 *pool)                   join the workers

Pool words (each group on its own 64-byte line): [0] generation (-1 = stop),
[8..11] the job (fn, blocks, n, stride), [16] next block (generation << 32 |
index), [24] blocks done, [32] workers started, [33] capacity, [40 + w]
worker w's pthread_t.
"""

from __future__ import annotations

# attributes on a threaded call (func.call, then llvm.call)
THREADS_ATTR = "bnnc.threads"
BLOCKS_ATTR = "bnnc.blocks"

# the pool's entry points
START, PARALLEL_FOR, STOP = "__bnnc_pool_start", "__bnnc_parallel_for", "__bnnc_pool_stop"

# word offsets of the pool state
GENERATION, JOB, NEXT, DONE, STARTED, CAPACITY, THREAD_IDS = 0, 8, 16, 24, 32, 33, 40
STOP_GENERATION = -1


def pool_words(capacity: int) -> int:
    """Size in i64 words of the state of a pool of `capacity` threads."""
    return THREAD_IDS + capacity
