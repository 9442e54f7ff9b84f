"""imgpipe: a reproducible image-classification pipeline.

The package is the library behind the DVC stages in ``stages/``, grouped by stage (see
ARCHITECTURE.md): what a stage imports is exactly what dvc.yaml says it depends on.
Modules import their heavy dependencies themselves, so that a stage which needs neither
torch nor mlflow never pays for loading them.
"""

__version__ = "0.1.0"
