"""The train stage's library, after torchvision's reference scripts: the loop (one epoch,
evaluation, ``fit``), its state and checkpoint, early stopping, schedules, optimisers,
the data on the device, and DDP."""
