"""MLflow: the tracking store, runs, data lineage, epoch logs, artifacts and the logged model."""
