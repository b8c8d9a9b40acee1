"""Eager training speed: an MLP SGD-momentum step and ResNet-18 forward+backward, beside PyTorch eager.

Workloads (median over many calls, one process per framework and workload so BLAS/OpenMP threads don't fight):
1. MLP 64-128-10, batch 64, MSE loss, SGD(lr=0.01, momentum=0.9): tracegrad eager, numpy by hand, PyTorch eager;
   with one BLAS/OpenMP thread everywhere (these matrices are too small to gain from a second thread, and idle
   worker threads spin-waiting on a shared 2-core machine made medians swing 20x between runs).
2. ResNet-18, batch 8, 3x64x64, train mode, forward + backward of `(model(x) - labels).sum()`, default threads.

Run:  python -m tracegrad bench --suite training [--quick]   (or python benchmarks/bench_training.py)
"""
import argparse
import importlib.util

import numpy as np

from .timing import bench, in_worker, send, worker_args
from .workloads import numpy_mlp_step

B, DIMS, LR, MOM = 64, (64, 128, 10), 0.01, 0.9


def data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, DIMS[0]), dtype=np.float32), rng.standard_normal((B, DIMS[-1]), dtype=np.float32),
            rng.random((8, 3, 64, 64), dtype=np.float32), rng.random((8, 1000), dtype=np.float32))


def framework_steps(lib):
    """The MLP step and the ResNet-18 pass written once, for `lib` = tracegrad or torch."""
    X, Y, img, labels = data()
    lib.manual_seed(0)
    mlp = lib.nn.Sequential(lib.nn.Linear(DIMS[0], DIMS[1]), lib.nn.ReLU(), lib.nn.Linear(DIMS[1], DIMS[2]))
    opt = lib.optim.SGD(mlp.parameters(), lr=LR, momentum=MOM)
    x, y = lib.from_numpy(X), lib.from_numpy(Y)

    def mlp_step():
        opt.zero_grad()
        loss = lib.nn.functional.mse_loss(mlp(x), y)
        loss.backward()
        opt.step()

    if lib.__name__ == "tracegrad":
        resnet = lib.models.resnet18()
    else:
        resnet = torch_resnet18()
    xi, yl = lib.from_numpy(img), lib.from_numpy(labels)

    def resnet_step():
        resnet.zero_grad()
        (resnet(xi) - yl).sum().backward()

    return mlp_step, resnet_step


def torch_resnet18():
    """torchvision's resnet18 written out in PyTorch (there is no CPU torchvision wheel here); needs torch."""
    import torch
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride=1, down=None):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.downsample = down

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
                down = None if stride == 1 and cin == cout else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                setattr(self, f"layer{i}", nn.Sequential(Block(cin, cout, stride, down), Block(cout, cout)))
                cin = cout
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(512, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def measure(lib_name, workload, n):
    if lib_name == "numpy-by-hand":
        return bench(numpy_mlp_step(DIMS, B, LR, MOM), n, 20) if workload == "mlp" else None
    lib = importlib.import_module(lib_name)
    mlp_step, resnet_step = framework_steps(lib)
    return bench(mlp_step, n, 20) if workload == "mlp" else bench(resnet_step, n, 1)


def run_worker(lib, workload, n):
    env = dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") if workload == "mlp" else {}
    return in_worker(__spec__.name, lib, workload, n, env=env)


def main(argv=None):
    if (args := worker_args()) is not None:
        return send(measure(args[0], args[1], int(args[2])))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    n_mlp, n_resnet = (20, 2) if ap.parse_args(argv).quick else (300, 7)
    libs = ["tracegrad"] + (["torch"] if importlib.util.find_spec("torch") else []) + ["numpy-by-hand"]
    results = {lib: {"mlp": run_worker(lib, "mlp", n_mlp), "resnet": run_worker(lib, "resnet", n_resnet)}
               for lib in libs}
    print(f"median us per call; {n_mlp} MLP steps (1 BLAS thread), {n_resnet} ResNet-18 passes (default threads); "
          f"each framework in its own process")
    cols = list(results)
    print(f"{'workload':<34}" + "".join(f"{c:>16}" for c in cols) + f"{'tg/torch':>10}{'tg/numpy':>10}")
    for key, label in (("mlp", "MLP 64-128-10 b64 SGD step"), ("resnet", "ResNet-18 b8 3x64x64 fwd+bwd")):
        cells = [results[c][key] for c in cols]
        row = "".join(f"{'-':>16}" if v is None else f"{v:16.1f}" for v in cells)
        tg = results["tracegrad"][key]
        th = results.get("torch", {}).get(key)
        nphand = results["numpy-by-hand"][key]
        row += f"{tg / th:10.2f}" if th else f"{'-':>10}"
        row += f"{tg / nphand:10.2f}" if nphand else f"{'-':>10}"
        print(f"{label:<34}{row}")


if __name__ == "__main__":
    main()
