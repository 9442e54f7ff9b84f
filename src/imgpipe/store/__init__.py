"""The files that pass between stages, one owner module per folder format.

``atomic`` writes anything safely; ``dataset`` is the array-plus-manifest layout of the
data folders; ``ingested``, ``balanced``, ``augmented`` and ``model_folder`` each own one
stage's output folder and are the only code that spells its file names.
"""
