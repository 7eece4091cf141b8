"""Inputs -> batches -> model -> results: the one path every command runs on."""
