"""What MLflow runs to load an imgpipe model (MLflow's "models from code"): the pyfunc in
``classifier``, imported from the imgpipe package that is logged beside this file."""

import mlflow

from imgpipe.serving.classifier import ServedClassifier

mlflow.models.set_model(ServedClassifier())
