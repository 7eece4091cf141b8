"""Where results go: the terminal, result files, images, merged shards."""
