"""The conformance checks: one test per rule, parametrized over every selected backend's cases.

Run them with `pytest --pyargs polyrl_conformance [--polyrl-backend NAME]`.
"""
