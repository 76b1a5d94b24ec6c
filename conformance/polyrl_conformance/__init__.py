"""The polyrl conformance suite: one pytest plugin that checks any backend behaves like the others."""
