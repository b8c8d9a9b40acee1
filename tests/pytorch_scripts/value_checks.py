"""Value and gradient checks of the kind small autograd engines test against PyTorch."""
import torch

x = torch.Tensor([-4.0]).double()
x.requires_grad = True
z = 2 * x + 2 + x
q = z.relu() + z * x
h = (z * z).relu()
y = h + q + q * x
y.backward()
print(y.data.item(), x.grad.item())

a = torch.Tensor([-4.0]).double()
b = torch.Tensor([2.0]).double()
a.requires_grad = True
b.requires_grad = True
c = a + b
d = a * b + b ** 3
c = c + c + 1
c = c + 1 + c + (-a)
d = d + d * 2 + (b + a).relu()
d = d + 3 * d + (b - a).relu()
e = c - d
f = e ** 2
g = f / 2.0
g = g + 10.0 / f
g.backward()
print(f"{g.data.item():.6f}", f"{a.grad.item():.6f}", f"{b.grad.item():.6f}")

t = torch.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
out = (t.sigmoid() * t.tanh()).sum() + t.abs().max() + t.clamp(-1, 1).pow(2).mean() + t.softmax(1)[0, 1]
out.backward()
print(out.item(), t.grad)
print(torch.autograd.functional.jacobian(lambda v: v ** 2, torch.tensor([1.0, 2.0])))
u = torch.tensor([0.5, -1.5], requires_grad=True)
(gu,) = torch.autograd.grad((u ** 3).sum(), u, create_graph=True)
gu.sum().backward()
print(gu.detach(), u.grad)
print(torch.sign(torch.tensor([float("nan"), -2.0, 0.0])), torch.tensor([3, -3]) // 2, torch.tensor([3, -3]) % 2)
print(torch.zeros(0, 3).sum(1), torch.ones(2, 0).max(0).values, torch.tensor([]).all(), torch.tensor([]).any())
