"""The one list of model names: params validation and the model factory both read it (params
holds it, so models imports params and never the other way)."""

SMALL_CNNS = ("simple_cnn", "base_cnn")
TORCHVISION_BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")
TIMM_BACKBONES = ("efficientnet_lite0",)
BACKBONES = TORCHVISION_BACKBONES + TIMM_BACKBONES
MODEL_NAMES = SMALL_CNNS + BACKBONES
