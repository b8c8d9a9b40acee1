"""The classic autograd walkthrough (PyTorch's "Autograd: automatic differentiation"), run eagerly.

>>> from tracegrad.demo import training, walkthrough
>>> walkthrough(out=lambda *a: None)  # runs every step; prints nothing here
>>> training(out=lambda *a: None)
"""
from __future__ import annotations

import tracegrad as torch


def grad_fn_chain(t, depth=0, seen=None) -> list[str]:
    """The `grad_fn` graph below `t`, one node per line, indented by depth."""
    seen = set() if seen is None else seen
    node = t.grad_fn if depth == 0 else t
    if node is None:
        return ["  " * depth + "(leaf)"]
    lines = ["  " * depth + node.name() + (" (shown above)" if node in seen else "")]
    if node in seen:
        return lines
    seen.add(node)
    for nxt, _ in node.next_functions:
        if nxt is not None:
            lines += grad_fn_chain(nxt, depth + 1, seen)
    return lines


def walkthrough(out=print) -> None:
    torch.manual_seed(0)
    out("== 1. Tensors that require grad record the operations applied to them ==")
    x = torch.ones(2, 2, requires_grad=True)
    out("x =", x)
    y = x + 2
    out("y = x + 2 =", y)
    out("y.grad_fn =", y.grad_fn, "  x.is_leaf =", x.is_leaf, "  y.is_leaf =", y.is_leaf)
    z = y * y * 3
    out_ = z.mean()
    out("z = y * y * 3 =", z)
    out("out = z.mean() =", out_)
    out("the graph behind out:\n  " + "\n  ".join(grad_fn_chain(out_)))

    out("\n== 2. backward() fills x.grad with d(out)/dx = 3/2 (x + 2) = 4.5 ==")
    out_.backward()
    out("x.grad =", x.grad)

    out("\n== 3. a**2 + 2*b**3 at a=2, b=4: gradients 2a = 4 and 6b**2 = 96 ==")
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(4.0, requires_grad=True)
    q = a ** 2 + 2 * b ** 3
    q.backward()
    out("a.grad =", a.grad, "  b.grad =", b.grad)

    out("\n== 4. A dynamic graph: the number of recorded ops depends on the data ==")
    x = torch.randn(3, requires_grad=True)
    y = x * 2
    steps = 0
    while y.data.norm() < 1000:
        y = y * 2
        steps += 1
    out(f"y = x * 2**{steps + 1} =", y)
    v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float32)
    y.backward(v)  # y is not a scalar: backward needs the vector of the vector-Jacobian product
    out(f"y.backward(v) gives x.grad = v * 2**{steps + 1} =", x.grad)

    out("\n== 5. no_grad, detach, and gradients of gradients ==")
    with torch.no_grad():
        out("(x ** 2).requires_grad under no_grad:", (x ** 2).requires_grad)
    out("x.detach().requires_grad:", x.detach().requires_grad)
    t = torch.tensor(3.0, requires_grad=True)
    (dt,) = torch.autograd.grad(t ** 3, t, create_graph=True)
    (d2t,) = torch.autograd.grad(dt, t)
    out("d/dt t**3 at 3 =", dt, "  d2/dt2 =", d2t)

    out("\n== 6. PyTorch's errors, with the op and shapes named ==")
    for label, fn in [("second backward", lambda: _twice()),
                      ("in-place on a leaf", lambda: torch.ones(2, requires_grad=True).add_(1)),
                      ("shape mismatch", lambda: torch.ones(2, 3) + torch.ones(4))]:
        try:
            fn()
        except RuntimeError as e:
            out(f"{label}: RuntimeError: {str(e)[:110]}...")


def training(out=print) -> None:
    """The classic tutorial Net trained with optim.SGD on a fixed random regression problem."""
    nn, F = torch.nn, torch.nn.functional  # noqa: N806 - PyTorch's usual names

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(10, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    torch.manual_seed(0)
    net = Net()
    out("\n== 7. Training the classic Net (Linear 10->5, relu, Linear 5->2) with optim.SGD ==")
    out(net)
    x, y = torch.randn(64, 10), torch.randn(64, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for step in range(31):
        opt.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            out(f"step {step:2d}  loss {loss.item():.4f}")


def _twice():
    x = torch.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()
