"""Loss modules: thin wrappers of `nn.functional` losses that keep their options.

>>> import tracegrad as tg
>>> tg.nn.MSELoss()(tg.tensor([1.0, 2.0]), tg.tensor([1.0, 4.0])).item()
2.0
"""
from __future__ import annotations

from . import functional as F
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction


class MSELoss(_Loss):
    def forward(self, x, target):
        return F.mse_loss(x, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, x, target):
        return F.l1_loss(x, target, self.reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, x, target):
        return F.nll_loss(x, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, x, target):
        return F.cross_entropy(x, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class BCELoss(_WeightedLoss):
    def forward(self, x, target):
        return F.binary_cross_entropy(x, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, x, target):
        return F.binary_cross_entropy_with_logits(x, target, self.weight, self.reduction, self.pos_weight)


# ---------------------------------------------------------------- ops-api block
class SmoothL1Loss(_Loss):
    """`F.smooth_l1_loss` with its options kept (size_average and reduce: PyTorch's deprecated flags)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction if size_average is None and reduce is None else
                         F._legacy_reduction(size_average, reduce))
        self.beta = beta

    def forward(self, x, target):
        return F.smooth_l1_loss(x, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """`F.huber_loss` with its options kept."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, x, target):
        return F.huber_loss(x, target, reduction=self.reduction, delta=self.delta)


# ---------------------------------------------------------------- nn-more block
class _LegacyLoss(_Loss):
    """A loss that also takes PyTorch's deprecated `size_average` and `reduce` flags (which override `reduction`)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(reduction if size_average is None and reduce is None else
                         F._legacy_reduction(size_average, reduce))


class KLDivLoss(_LegacyLoss):
    """`F.kl_div` with its options kept; reduction='batchmean' is the KL divergence's definition.

    >>> import tracegrad as tg
    >>> p = tg.tensor([[0.25, 0.75]])
    >>> tg.nn.KLDivLoss(reduction="batchmean", log_target=True)(p.log(), p.log()).item()
    0.0
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class TripletMarginLoss(_LegacyLoss):
    """`F.triplet_margin_loss` with its options kept.

    >>> import tracegrad as tg
    >>> tg.nn.TripletMarginLoss(margin=0.5)(tg.zeros(2, 3), tg.zeros(2, 3), tg.ones(2, 3)).item()
    0.0
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False, size_average=None,
                 reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)


class _MarginLoss(_LegacyLoss):
    _default_margin = 0.0

    def __init__(self, margin: float | None = None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = self._default_margin if margin is None else margin


class MarginRankingLoss(_MarginLoss):
    """`F.margin_ranking_loss` with its margin kept.

    >>> import tracegrad as tg
    >>> tg.nn.MarginRankingLoss(0.5)(tg.tensor([1.0]), tg.tensor([0.0]), tg.tensor([-1.0])).item()
    1.5
    """

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """`F.hinge_embedding_loss` with its margin kept.

    >>> import tracegrad as tg
    >>> tg.nn.HingeEmbeddingLoss()(tg.tensor([0.25]), tg.tensor([-1.0])).item()
    0.75
    """

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """`F.cosine_embedding_loss` with its margin kept.

    >>> import tracegrad as tg
    >>> tg.nn.CosineEmbeddingLoss()(tg.tensor([[1.0, 0.0]]), tg.tensor([[1.0, 0.0]]), tg.tensor([-1.0])).item()
    1.0
    """

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class SoftMarginLoss(_LegacyLoss):
    """`F.soft_margin_loss`.

    >>> import tracegrad as tg
    >>> round(tg.nn.SoftMarginLoss()(tg.tensor([0.0]), tg.tensor([1.0])).item(), 4)
    0.6931
    """

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_LegacyLoss):
    """`F.multilabel_soft_margin_loss` with its class weights (a buffer, as in PyTorch).

    >>> import tracegrad as tg
    >>> round(tg.nn.MultiLabelSoftMarginLoss()(tg.zeros(1, 2), tg.tensor([[1.0, 0.0]])).item(), 4)
    0.6931
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class PoissonNLLLoss(_LegacyLoss):
    """`F.poisson_nll_loss` with its options kept.

    >>> import tracegrad as tg
    >>> tg.nn.PoissonNLLLoss()(tg.tensor([0.0]), tg.tensor([1.0])).item()
    1.0
    """

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None, eps: float = 1e-8, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """`F.gaussian_nll_loss` with its options kept: `loss(input, target, var)`.

    >>> import tracegrad as tg
    >>> tg.nn.GaussianNLLLoss()(tg.tensor([1.0]), tg.tensor([1.0]), tg.tensor([1.0])).item()
    0.0
    """

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):  # noqa: A002 - PyTorch's name
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class MultiMarginLoss(_LegacyLoss):
    """`F.multi_margin_loss` with its options and class weights (a buffer) kept.

    >>> import tracegrad as tg
    >>> tg.nn.MultiMarginLoss()(tg.tensor([[0.1, 0.2, 0.4, 0.8]]), tg.tensor([3])).item()
    0.32499998807907104
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got {weight.ndim}D instead")
        self.p, self.margin = p, margin
        self.register_buffer("weight", weight)

    def forward(self, input, target):  # noqa: A002 - PyTorch's name
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)
