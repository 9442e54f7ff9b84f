"""Networks that take stored uint8 images: architectures, transfer learning, freezing,
the device they run on, and inference. Used by train, evaluate and ``imgpipe predict``."""
