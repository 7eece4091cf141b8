"""Tensor files: recognise, read, view, summarise, export to HDF5 (chapter 3)."""
