"""A tour of tensors, as a first tutorial gives it: creation, attributes, indexing, joining, arithmetic, numpy."""
import numpy as np
import torch

torch.manual_seed(0)
data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
x_np = torch.from_numpy(np.array(data))
x_ones = torch.ones_like(x_data)
print(f"Ones Tensor: \n {x_ones} \n")
x_rand = torch.rand_like(x_data, dtype=torch.float)
print(f"Random Tensor: \n {x_rand} \n")

shape = (2, 3,)
print(torch.rand(shape), torch.ones(shape), torch.zeros(shape), sep="\n")
tensor = torch.rand(3, 4)
print(f"Shape of tensor: {tensor.shape}")
print(f"Datatype of tensor: {tensor.dtype}")
print(f"Device tensor is stored on: {tensor.device}")
device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
print(f"Using {device} device")
tensor = tensor.to(device)

tensor = torch.ones(4, 4)
print(f"First row: {tensor[0]}")
print(f"First column: {tensor[:, 0]}")
print(f"Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
print(tensor)
t1 = torch.cat([tensor, tensor, tensor], dim=1)
print(t1)

y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)
z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)
print(y1, y3, z3, sep="\n")
agg = tensor.sum()
agg_item = agg.item()
print(agg_item, type(agg_item))
print(f"{tensor} \n")
tensor.add_(5)
print(tensor)

t = torch.ones(5)
n = t.numpy()
t.add_(1)
print(f"t: {t}", f"n: {n}")
n = np.ones(5)
t = torch.from_numpy(n)
np.add(n, 1, out=n)
print(f"t: {t}", f"n: {n}")

a = torch.arange(12.).reshape(3, 4)
print(a[range(2)], a[[0, 2]][:, 1:3], a.sum(axis=0, keepdims=True), a.mean(dim=1))
print(torch.dot(torch.tensor([2., 3.]), torch.tensor([2., 1.])), torch.mv(a, torch.ones(4)))
print(a.cumsum(dim=1), torch.einsum("ij,kj->ik", a, a))
print(torch.sort(torch.tensor([3., 1., 2.]), descending=True), torch.topk(torch.tensor([1., 5., 3., 4.]), 2))
print(a.new_zeros(2), a.new_ones((1, 2)), a.new_full((2,), 7.), a.new_tensor([1, 2]))
print(a.type(), a.type(torch.int64), a.int().dtype, a.half().dtype, torch.finfo(torch.float32).eps)
print(f"{torch.tensor(187)}", "{:.2f}".format(torch.tensor(3.14159)), torch.trace(a[:, :3]))
