"""Integrations: installed plugins that implement the callback hooks and so see every run.

Each is registered through the "polyrl" entry-point group (like a backend plugin) and does
nothing until enabled, typically by an environment variable; importing one imports no heavy
library.
"""
