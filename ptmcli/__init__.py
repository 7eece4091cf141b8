"""ptm: run the pretrained networks of "Deep Learning with PyTorch" on your own files."""

__version__ = "0.1.0"
