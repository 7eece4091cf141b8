"""One module per command group; each function's docstring is its --help."""
