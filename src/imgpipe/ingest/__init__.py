"""The ingest stage's library: sources, decoding, duplicates, the long tail and the split."""
