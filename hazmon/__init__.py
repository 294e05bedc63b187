"""hazmon: composition root, configuration, command line and development servers."""
