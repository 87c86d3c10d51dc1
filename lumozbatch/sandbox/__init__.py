"""A LumozAI-compatible API server for tests, benchmarks and trying manifests for free."""
