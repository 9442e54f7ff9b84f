"""imgpipe: a reproducible image-classification pipeline.

The package is the library behind the DVC stages in ``stages/``. Modules are organised by
concept (sources, splitting, balancing, augmentation, models, training, evaluation,
tracking) and import their heavy dependencies themselves, so that a stage which needs
neither torch nor mlflow never pays for loading them.
"""

__version__ = "0.1.0"
