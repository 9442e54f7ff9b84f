"""Train: fit the configured model on the augmented train split, validating each epoch.

Outputs (see dvc.yaml): ``models/``, ``reports/train_history.csv`` and ``checkpoints/``
(the last epoch's state, so a killed run resumes). With ``train.nproc`` above 1, or
``PET_NNODES`` set for several machines, the stage starts itself under torchrun (DDP);
with ``train.launcher: ray``, under Ray Train. The body is ``imgpipe.train.stage``.
"""

from imgpipe.errors import run_stage
from imgpipe.train.stage import main

if __name__ == "__main__":
    run_stage(main)
