"""Every section's schema by name, for what checks the whole file: the check_params stage,
doctor and the tests. The pipeline's other stages each import their own section only."""

from __future__ import annotations

from pathlib import Path

from imgpipe.errors import ParamsError
from imgpipe.params.augment import AugmentConfig
from imgpipe.params.balance import BalanceConfig
from imgpipe.params.base import SectionConfig, read_params
from imgpipe.params.evaluate import EvaluateConfig
from imgpipe.params.ingest import IngestConfig
from imgpipe.params.tracking import MlflowConfig
from imgpipe.params.train import TrainConfig
from imgpipe.params.tune import TuneConfig

SECTIONS: dict[str, type[SectionConfig]] = {
    c.section: c for c in (IngestConfig, BalanceConfig, AugmentConfig, TrainConfig, EvaluateConfig, MlflowConfig)
}
OPTIONAL: dict[str, type[SectionConfig]] = {TuneConfig.section: TuneConfig}


def check_all(params_path: Path) -> None:
    """Validate every section; one ParamsError naming every bad key, of all sections."""
    problems = []
    present = [s for name, s in OPTIONAL.items() if name in read_params(params_path)]
    for schema in [*SECTIONS.values(), *present]:
        try:
            schema.load(params_path)
        except ParamsError as exc:
            problems.extend(line for line in str(exc).splitlines() if line not in problems)
    if problems:
        raise ParamsError("\n".join(problems))
