"""The model MLflow serves: encoded image files in, decoded as ingest decodes them, class
names and probabilities out (``classifier``), and the request and answer it declares (``schema``)."""
