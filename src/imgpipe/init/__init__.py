"""``imgpipe init FOLDER``: params.yaml for a new folder of images, each choice with its reason."""
