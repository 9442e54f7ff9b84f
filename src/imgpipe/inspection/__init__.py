"""``imgpipe embed`` and ``imgpipe inspect``: looking at the data through the trained model.

One job per module: ``project`` loads the ingested images and the model, ``features``
catches the penultimate-layer features, ``imagenet`` offers features from a network that
never saw the labels, ``embed`` and ``embedding_map`` write the embeddings and their 2-D
map, ``label_issues`` ranks likely label errors with cleanlab, ``gradcam`` shows where the
model looks, ``pictures`` draws the grids, ``outputs`` names the files, and ``command``
runs them for the CLI.
"""
