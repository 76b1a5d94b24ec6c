"""The `polyrl` command line: train, play, evaluate, show, plugins (and conformance when installed)."""
