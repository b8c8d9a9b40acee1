"""Draw the README's picture: one training step as eager mode records it and as `compile` sees it.

Run:  python docs/figures.py   (writes docs/images/dynamic_vs_static.png)
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tracegrad as tg  # noqa: E402
from tracegrad import nn, optim, viz  # noqa: E402


def main(path=Path(__file__).parent / "images" / "dynamic_vs_static.png"):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = tg.randn(16, 4), tg.randn(16, 2)
    loss = nn.functional.mse_loss(model(x), y)  # eager: the graph behind the loss, recorded as the code ran
    fused = tg.compile(step, backend="numba").explain(x, y).fused
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 8.5), gridspec_kw={"width_ratios": [1, 2.6]})
    viz.draw(loss, ax=left, title="dynamic: the grad_fn graph eager mode built while the\nforward ran "
                                  "(backward walks it once, then it is freed)")
    viz.draw(fused, ax=right, color_by="group", font_size=6,
             title="static: the whole step (forward, derived backward, SGD update) as one IR graph;\n"
                   "colours are the elementwise groups the numba backend fuses into loops")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
