"""Every collective's values on 2+ ranks, eager and compiled, its errors, and recoverable mismatches.

Run by tests/test_distributed.py with the environment's own mpirun: ``mpirun -n 2 python collectives.py``.
"""
import numpy as np
from common import argv, check, expect_error, report, start

import tracegrad as tg
import tracegrad.distributed as dist
from tracegrad.runtime import tiered


def values(r, dtype):
    """Rank r's input: distinct per rank, small integers (exact in every dtype)."""
    return (np.array([1, -2, 3, 4, -5, 6], np.int64) * (r + 1) + r).astype(dtype)


def main():
    r, n = start()
    check("world", (r, n) == (dist.get_rank(), dist.get_world_size()) and n >= 2 and dist.is_initialized())
    check("backend", dist.get_backend() == "mpi" and dist.group.WORLD is not None)
    everyone = {np.dtype(d): [values(k, d) for k in range(n)] for d in ("float32", "float64", "int64", "int32")}

    # all_reduce: every ReduceOp, several dtypes, in place
    reference = {"SUM": lambda a: a.sum(0), "PRODUCT": lambda a: a.prod(0), "MIN": lambda a: a.min(0),
                 "MAX": lambda a: a.max(0), "BAND": lambda a: np.bitwise_and.reduce(a, 0),
                 "BOR": lambda a: np.bitwise_or.reduce(a, 0), "BXOR": lambda a: np.bitwise_xor.reduce(a, 0)}
    for dt, rows in everyone.items():
        for op in dist.ReduceOp:
            if op.name in ("BAND", "BOR", "BXOR") and dt.kind == "f":
                continue
            t = tg.tensor(rows[r])
            before = t._version
            assert dist.all_reduce(t, op=op) is None
            stacked = np.stack(rows)
            want = (stacked.sum(0) / n if dt.kind == "f" else stacked.sum(0) // n) if op.name == "AVG" \
                else reference[op.name](stacked)
            check(f"all_reduce {op.name} {dt}", np.array_equal(t.numpy(), want.astype(dt)) and t._version > before,
                  f"{t.numpy()} != {want}")
    expect_error("all_reduce BAND on floats", lambda: dist.all_reduce(tg.ones(2), op=dist.ReduceOp.BAND), ValueError,
                 ["BAND", "integer"])
    h = tg.tensor(values(r, np.float16))
    dist.all_reduce(h)
    check("all_reduce float16", np.array_equal(h.numpy(), sum(values(k, np.float32) for k in range(n))
                                               .astype(np.float16)))
    b = tg.tensor([r == 0, True, False])
    dist.all_reduce(b, op=dist.ReduceOp.MAX)
    c = tg.tensor([r == 0, True, False])
    dist.all_reduce(c, op=dist.ReduceOp.MIN)
    check("all_reduce bool", b.tolist() == [True, True, False] and c.tolist() == [False, True, False])

    # a non-contiguous view is reduced in place, into its base
    base = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) * (r + 1))
    view = base.t()
    dist.all_reduce(view)
    check("all_reduce of a view", np.array_equal(base.numpy(), np.arange(6).reshape(2, 3) * sum(range(1, n + 1))))

    # async: Work
    t = tg.tensor(values(r, np.float32))
    work = dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True)
    check("async all_reduce", work.wait() and work.is_completed() and
          np.array_equal(t.numpy(), sum(everyone[np.dtype("float32")])))

    # broadcast from each rank
    for src in range(n):
        t = tg.tensor(values(r, np.float64))
        dist.broadcast(t, src=src)
        check(f"broadcast src={src}", np.array_equal(t.numpy(), values(src, np.float64)))
    expect_error("broadcast src out of range", lambda: dist.broadcast(tg.ones(1), src=n), ValueError, ["src", "rank"])

    # all_gather, all_gather_into_tensor (concatenated and stacked)
    mine = tg.tensor(values(r, np.float32)).reshape(2, 3)
    outs = [tg.zeros(2, 3) for _ in range(n)]
    dist.all_gather(outs, mine)
    check("all_gather", all(np.array_equal(o.numpy(), values(k, np.float32).reshape(2, 3)) for k, o in enumerate(outs)))
    cat_out, stack_out = tg.zeros(2 * n, 3), tg.zeros(n, 2, 3)
    dist.all_gather_into_tensor(cat_out, mine)
    dist.all_gather_into_tensor(stack_out, mine)
    want = np.stack([values(k, np.float32).reshape(2, 3) for k in range(n)])
    check("all_gather_into_tensor", np.array_equal(cat_out.numpy(), want.reshape(2 * n, 3))
          and np.array_equal(stack_out.numpy(), want))
    expect_error("all_gather list length", lambda: dist.all_gather([tg.zeros(2, 3)], mine), ValueError,
                 ["tensor_list", "one per rank"])
    expect_error("all_gather_into_tensor size", lambda: dist.all_gather_into_tensor(tg.zeros(3), mine), ValueError,
                 ["world_size", "times input"])

    # reduce_scatter and reduce_scatter_tensor: rank r gets the reduction of every rank's entry r
    entries = [tg.tensor(values(r, np.float32) * (k + 1)) for k in range(n)]
    out = tg.zeros(6)
    dist.reduce_scatter(out, entries)
    check("reduce_scatter SUM", np.array_equal(out.numpy(), sum(values(k, np.float32) * (r + 1) for k in range(n))))
    big = tg.tensor(np.concatenate([values(r, np.int64) * (k + 1) for k in range(n)]))
    out = tg.zeros(6, dtype=tg.int64)
    dist.reduce_scatter_tensor(out, big, op=dist.ReduceOp.MAX)
    check("reduce_scatter_tensor MAX", np.array_equal(out.numpy(), np.max([values(k, np.int64) * (r + 1)
                                                                           for k in range(n)], 0)))
    expect_error("reduce_scatter list", lambda: dist.reduce_scatter(tg.zeros(6), entries[:1]), ValueError,
                 ["input_list", "one per rank"])

    # barrier, object collectives
    assert dist.barrier() is None
    check("async barrier", dist.barrier(async_op=True).wait())
    objects = [None] * n
    dist.all_gather_object(objects, {"rank": r, "name": f"r{r}"})
    check("all_gather_object", objects == [{"rank": k, "name": f"r{k}"} for k in range(n)])
    lst = [r, f"from {r}"]
    dist.broadcast_object_list(lst, src=n - 1)
    check("broadcast_object_list", lst == [n - 1, f"from {n - 1}"])

    # errors of the API
    expect_error("not a tensor", lambda: dist.all_reduce([1.0]), TypeError, ["Expected parameter `tensor`"])
    expect_error("reduce op", lambda: dist.all_reduce(tg.ones(1), op="sum"), ValueError, ["Invalid reduce op"])
    expect_error("twice", lambda: dist.init_process_group("mpi"), ValueError, ["twice"])

    # compiled (interpreter): the collectives are nodes of the graph, run at every call
    @tg.compile(backend="interpret")
    def step(x):
        y = x * 2.0
        dist.all_reduce(y, op=dist.ReduceOp.AVG)
        z = x + 0.0
        dist.broadcast(z, src=1)
        parts = [tg.zeros_like(x) for _ in range(n)]
        dist.all_gather(parts, x)
        s = tg.zeros_like(x)
        dist.reduce_scatter(s, [x * float(k + 1) for k in range(n)], op=dist.ReduceOp.SUM)
        dist.barrier()
        return y + 1.0, z, tg.stack(parts), s

    for call in range(3):
        x = tg.tensor(values(r, np.float32) + call)
        y, z, parts, s = step(x)
        allx = [values(k, np.float32) + call for k in range(n)]
        check(f"compiled call {call}",
              np.allclose(y.numpy(), 2 * np.mean(allx, 0) + 1) and np.array_equal(z.numpy(), allx[1])
              and np.array_equal(parts.numpy(), np.stack(allx)) and np.array_equal(s.numpy(), sum(allx) * (r + 1)))
    text = str(step.explain(tg.tensor(values(r, np.float32))))
    for node in ("= all_reduce %0 reduce_op='AVG'", "= broadcast %", "src=1", "= all_gather x world_size=",
                 "= reduce_scatter %", "= barrier"):
        check(f"printout shows {node!r}", node in text, text)

    # ranks switch a graph with collectives to native code together; any other graph on their own
    g_with = step.last_variant.graph
    g_without = tg.jit.trace(lambda x: x * 2.0, tg.ones(2))
    check("tier switch together", tiered.SWITCH_TOGETHER(r == 0, g_with) is False
          and tiered.SWITCH_TOGETHER(True, g_with) is True and tiered.SWITCH_TOGETHER(r == 0, g_without) == (r == 0))

    # mismatches are detected (and, caught, leave the group usable): other shapes, another collective, a compiled
    # graph with one collective more on one rank
    expect_error("mismatch: shapes", lambda: dist.all_reduce(tg.ones(3 + r)), dist.DistError,
                 ["Detected mismatch between collectives on ranks", "float32[3]", "float32[4]"])
    expect_error("mismatch: kinds", lambda: dist.barrier() if r == 1 else dist.all_reduce(tg.ones(2)), dist.DistError,
                 ["Detected mismatch", "barrier", "all_reduce"])

    @tg.compile(backend="interpret")
    def uneven(x):
        dist.all_reduce(x)
        if r == 1:  # a graph with one more collective on rank 1
            dist.all_reduce(x)
        return x * 1.0

    def call_uneven():
        uneven(tg.ones(2))
        dist.barrier()  # rank 0's next collective meets rank 1's extra all_reduce
    expect_error("mismatch: compiled graphs", call_uneven, dist.DistError, ["Detected mismatch", "barrier",
                                                                            "all_reduce"])
    t = tg.ones(2)
    dist.all_reduce(t)
    check("usable after mismatches", t.tolist() == [float(n)] * 2)
    report(mode=argv(1))
    dist.destroy_process_group()
    check("destroyed", not dist.is_initialized())


if __name__ == "__main__":
    main()
