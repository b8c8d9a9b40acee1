"""Neural-network layers, losses and the Module system, as in `torch.nn`.

>>> import tracegrad as tg
>>> net = tg.nn.Sequential(tg.nn.Linear(4, 3), tg.nn.ReLU())
>>> net(tg.ones(2, 4)).shape
tracegrad.Size([2, 3])
"""
from . import functional, init, utils
from .layers import (
                     GELU,
                     AdaptiveAvgPool2d,
                     AvgPool2d,
                     BatchNorm1d,
                     BatchNorm2d,
                     Conv2d,
                     Dropout,
                     Embedding,
                     Flatten,
                     Identity,
                     LayerNorm,
                     LeakyReLU,
                     Linear,
                     LogSoftmax,
                     MaxPool2d,
                     ReLU,
                     Sigmoid,
                     Softmax,
                     Tanh,
)
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, ModuleDict, ModuleList, Sequential
from .parameter import Parameter

__all__ = ["functional", "init", "utils", "Module", "Sequential", "ModuleList", "ModuleDict", "Parameter", "Identity",
           "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Flatten", "Dropout", "Embedding", "ReLU", "LeakyReLU", "GELU", "Tanh", "Sigmoid",
           "Softmax", "LogSoftmax", "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
           "BCEWithLogitsLoss"]

# ops-api block
from .layers import Upsample  # noqa: E402
from .loss import HuberLoss, SmoothL1Loss  # noqa: E402

__all__ += ["Upsample", "SmoothL1Loss", "HuberLoss"]

# nn-more block
from .layers_more import *  # noqa: E402, F403
from .layers_more import __all__ as _layers_more  # noqa: E402
from .loss import (  # noqa: E402
    CosineEmbeddingLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    KLDivLoss,
    MarginRankingLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    PoissonNLLLoss,
    SoftMarginLoss,
    TripletMarginLoss,
)
from .module import ParameterDict, ParameterList  # noqa: E402

__all__ += _layers_more + ["ParameterList", "ParameterDict", "KLDivLoss", "TripletMarginLoss", "MarginRankingLoss",
                           "HingeEmbeddingLoss", "CosineEmbeddingLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss",
                           "PoissonNLLLoss", "GaussianNLLLoss", "MultiMarginLoss"]
# math-more block: activation modules
from .layers import (  # noqa: E402
    CELU,
    ELU,
    GLU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    SiLU,
    Softmin,
    Softplus,
    Softsign,
    Threshold,
)

__all__ += ["SiLU", "ELU", "SELU", "CELU", "Softplus", "Softsign", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish",
            "Mish", "GLU", "Softmin", "PReLU", "Threshold", "LogSigmoid"]
# attention block: attention and the Transformer
from .attention import MultiheadAttention  # noqa: E402
from .transformer import (  # noqa: E402
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ += ["MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
            "TransformerDecoderLayer"]

# rnn block: recurrent layers
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase  # noqa: E402

__all__ += ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

# dist block: data parallelism (tracegrad.distributed)
from . import parallel  # noqa: E402

__all__ += ["parallel"]
