"""Every section's schema by name: for tools that check the whole file (doctor, tests).

No stage imports this module: a stage depends on its own section's schema only.
"""

from __future__ import annotations

from imgpipe.params.augment import AugmentConfig
from imgpipe.params.balance import BalanceConfig
from imgpipe.params.base import SectionConfig
from imgpipe.params.evaluate import EvaluateConfig
from imgpipe.params.ingest import IngestConfig
from imgpipe.params.tracking import MlflowConfig
from imgpipe.params.train import TrainConfig

SECTIONS: dict[str, type[SectionConfig]] = {
    c.section: c for c in (IngestConfig, BalanceConfig, AugmentConfig, TrainConfig, EvaluateConfig, MlflowConfig)
}
