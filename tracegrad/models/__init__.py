"""Model zoo: `resnet18` (torchvision's architecture and key names)."""
from .resnet import BasicBlock, ResNet, resnet18

__all__ = ["BasicBlock", "ResNet", "resnet18"]
