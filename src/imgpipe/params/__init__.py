"""Typed, validated params: one module per section of ``params.yaml``.

A stage imports only the schema of the section it reads, so editing another stage's
schema does not rerun it (see dvc.yaml). ``base`` reads the file and turns pydantic's
errors into messages that name the key; ``sections`` gathers every schema, for tools.
"""
