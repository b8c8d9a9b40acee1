"""A generated program: straight-line statements over a few inputs, rendered as a runnable Python module.

A program is kept as data (its arguments, statements, outputs, optimizer) so the shrinker can delete
parts of it, and rendered as source text so that a failure prints as code anyone can run. The module
defines two functions:

* ``inputs(call)``: fresh argument tensors for call number `call`, each drawn from its own numpy stream
  (``default_rng([seed, call, k])``), so deleting an argument leaves the others' values unchanged;
* ``build()``: a fresh parameter and optimizer (if any) and the function ``f`` under test, returned with
  ``state()``, which lists the tensors ``f`` changes outside itself (the parameter and optimizer state).

``f`` returns the chosen outputs, then (if it has one) the loss, a weighted sum of some outputs, then (if
it calls ``loss.backward()`` itself) the gradients of its arguments. `repro()` adds the lines that run
``f`` eagerly and compiled and print what differs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

_HEADER = "import numpy as np\nimport tracegrad as tg\n"


@dataclass(frozen=True)
class Arg:
    """An argument of ``f``: `kind` "float" (normal values), or "index" (integers in [0, high))."""

    name: str
    key: int                    # its numpy stream: default_rng([seed, call, key])
    shape: tuple
    dtype: str                  # "float32", "float64" or "int64"
    requires_grad: bool = False
    kind: str = "float"
    high: int = 1

    def source(self) -> str:
        if self.kind == "index":
            draw = f"r({self.key}).integers(0, {self.high}, {self.shape!r})"
        else:
            draw = f"r({self.key}).standard_normal({self.shape!r})"
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"{self.name} = tg.tensor({draw}, dtype=tg.{self.dtype}{grad})"


@dataclass(frozen=True)
class Stmt:
    """One statement of ``f``'s body (possibly several lines: an ``if``, a ``with`` block)."""

    lines: tuple                # source lines, indented relative to the body
    defines: str                # the variable it defines ("" if it only mutates)
    reads: tuple                # the variables it reads
    labels: tuple               # what it exercises, for the summary ("unary:exp", "inplace", "row:lerp", ...)


@dataclass(frozen=True)
class Program:
    seed: int
    args: tuple                 # Arg, in order
    stmts: tuple                # Stmt, in order
    outputs: tuple              # variables returned (and summed into the loss if they carry gradient)
    loss_terms: tuple           # variables in the loss
    backward: str = "inside"    # "inside" f, "outside" (after the call, through the compiled region), "none"
    optimizer: str = ""         # "" or the optimizer's constructor call on [p], e.g. "tg.optim.SGD([p], lr=0.1)"
    param: tuple = ()           # the parameter's shape (if there is an optimizer)
    dtype: str = "float32"
    labels_extra: tuple = field(default=())

    # ------------------------------------------------------------------ editing, for the shrinker
    def without_stmt(self, i: int) -> Program:
        return replace(self, stmts=self.stmts[:i] + self.stmts[i + 1:])

    def pruned(self) -> Program:
        """Drop outputs no statement defines any more, and arguments nothing reads."""
        defined = {s.defines for s in self.stmts} | {a.name for a in self.args} | {"p"}
        outputs = tuple(o for o in self.outputs if o in defined)
        terms = tuple(o for o in self.loss_terms if o in defined)
        used = {r for s in self.stmts for r in s.reads} | set(outputs) | set(terms)
        args = tuple(a for a in self.args if a.name in used)
        prog = replace(self, args=args, outputs=outputs, loss_terms=terms)
        if "p" not in used and self.optimizer:
            prog = replace(prog, optimizer="", param=())
        if not terms:
            prog = replace(prog, backward="none")
        return prog

    def labels(self) -> list:
        out = [lab for s in self.stmts for lab in s.labels] + list(self.labels_extra)
        if self.optimizer:
            out.append("optim:" + self.optimizer.split("(")[0].rsplit(".", 1)[-1])
        out.append(f"backward:{self.backward}")
        return out

    # ------------------------------------------------------------------ rendering
    def source(self) -> str:
        """The program as a Python module (see the module docstring)."""
        grads = [a.name for a in self.args if a.requires_grad]
        lines = [_HEADER, "", "def inputs(call):", "    def r(k):",
                 f"        return np.random.default_rng([{self.seed}, call, k])", "", "    return ["]
        lines += [f"        {a.source().split(' = ', 1)[1]}," for a in self.args]
        lines.append("    ]")
        lines += ["", "", "def build():"]
        state = "[]"
        if self.optimizer:
            draw = f"np.random.default_rng([{self.seed}, 1000]).standard_normal({self.param!r})"
            lines.append(f"    p = tg.tensor({draw}, dtype=tg.{self.dtype}, requires_grad=True)")
            lines.append(f"    opt = {self.optimizer}")
            state = "[p, p.grad] + [v for s in opt.state.values() for _, v in sorted(s.items()) " \
                    "if isinstance(v, tg.Tensor)]"
        lines.append(f"    def f({', '.join(a.name for a in self.args)}):")
        if self.optimizer:
            lines.append("        opt.zero_grad()")
        for stmt in self.stmts:
            lines += [f"        {line}" for line in stmt.lines]
        outs = list(self.outputs)
        if self.backward != "none":
            # weighted sums, so that a gradient in the wrong order shows (a plain sum's is all ones)
            terms = " + ".join(f"(({t}) * tg.linspace(-1.0, 1.5, {t}.numel(), dtype={t}.dtype).reshape({t}.shape))"
                               f".sum()" for t in self.loss_terms)
            lines.append(f"        loss = {terms}")
            outs.append("loss")
        if self.backward == "inside":
            lines.append("        loss.backward()")
            if self.optimizer:
                lines.append("        opt.step()")
            outs += [f"{g}.grad" for g in grads]
        lines.append(f"        return [{', '.join(outs)}]")
        lines.append(f"    return f, lambda: {state}")
        return "\n".join(lines) + "\n"

    def repro(self, backend: str, gradcheck: bool = False) -> str:
        """The program and a few lines that show the mismatch (what the fuzzer prints for a failure)."""
        loss = len(self.outputs)
        diff = [i for i, a in enumerate(self.args) if a.requires_grad]
        backward = "    out[-1].backward()\n" if self.backward == "outside" else ""
        if gradcheck:
            tail = "    out[-1].backward()\n    return out + [x.grad for x in xs if x.requires_grad]" \
                if self.backward == "outside" else "    return out"
            return self.source() + f"""

def results(h, u):
    f, _ = build()
    tg.manual_seed(0)
    xs = inputs(0)
    with tg.no_grad():
        for i, d in zip({diff!r}, u):
            xs[i].add_(tg.tensor(h * d))
    out = f(*xs)
{tail}


u = [np.random.default_rng(1).standard_normal(x.shape) for i, x in enumerate(inputs(0)) if i in {diff!r}]
grads = results(0.0, u)[{loss + 1}:]
autograd = sum(float((g.numpy() * d).sum()) for g, d in zip(grads, u) if g is not None)
central = (float(results(1e-6, u)[{loss}]) - float(results(-1e-6, u)[{loss}])) / 2e-6
print("directional derivative: autograd", autograd, "central difference", central)
"""
        same = "np.array_equal(a, b, equal_nan=True)" if backend == "interpret" else \
            "np.allclose(b, a, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(a).max(initial=0))), equal_nan=True)"
        grads = "    out += [x.grad for x in xs if x.requires_grad]\n" if self.backward == "outside" else ""
        return self.source() + f"""

def results(fn, state, call):
    tg.manual_seed(call)
    xs = inputs(call)
    out = fn(*xs)
{backward}{grads}    return [None if t is None else t.detach().numpy().copy() for t in out + state()]


f, state = build()
g, gstate = build()
cg = tg.compile(g, backend={backend!r}{", tiered=False" if backend == "numba" else ""})
for call in range(4):
    for k, (a, b) in enumerate(zip(results(f, state, call), results(cg, gstate, call))):
        if (a is None) != (b is None) or a is not None and not (a.shape == b.shape and {same}):
            print(f"call {{call}}, result {{k}}: eager {{a}}, compiled {{b}}")
"""
