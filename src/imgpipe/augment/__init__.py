"""The augment stage's library: an albumentations pipeline from params, and its variants."""
