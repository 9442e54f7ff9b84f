"""The balance stage's library: imbalanced-learn resampling of the train split, and its pictures."""
