"""The ``imgpipe`` command and what it runs (doctor, predict, report, server).

No stage imports anything here: editing a tool never reruns the pipeline.
"""
