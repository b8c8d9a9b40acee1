"""Optimizers (`SGD`, `Adam`, `AdamW`, `RMSprop`, `Adagrad`, `Adadelta`, `NAdam`, `RAdam`, `Adamax`, `ASGD`,
`LBFGS`) and learning-rate schedulers
(`optim.lr_scheduler`), as in `torch.optim`.

>>> import tracegrad as tg
>>> w = tg.tensor([3.0], requires_grad=True)
>>> opt = tg.optim.SGD([w], lr=0.25)
>>> for _ in range(3):
...     opt.zero_grad()
...     loss = (w * w).sum()
...     loss.backward()
...     opt.step()
>>> w
tensor([0.3750], requires_grad=True)
"""
from . import lr_scheduler  # noqa: I001 - the blocks below are kept apart for merging
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

# ---- linalg-optim block
from .adamax import Adamax  # noqa: E402
from .asgd import ASGD  # noqa: E402
from .lbfgs import LBFGS  # noqa: E402
from .nadam import NAdam  # noqa: E402
from .radam import RAdam  # noqa: E402
# ---- end of the linalg-optim block

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler",
           "NAdam", "RAdam", "Adamax", "ASGD", "LBFGS"]
