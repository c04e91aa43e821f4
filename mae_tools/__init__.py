"""Tools around the library: benchmarks, small-scale ablations, the photo-corpus builder, the
server load test and serving benchmark, and helpers for tests and benchmarks that start real
servers. Not imported by ``mae_core``, ``mae_service`` or ``app``."""
