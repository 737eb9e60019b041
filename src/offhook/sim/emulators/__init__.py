"""Local servers that speak the real providers' wire protocols, with latency profiles and fault
plans, so that our clients (and the official SDKs) are exercised for real in tests and benchmarks."""
