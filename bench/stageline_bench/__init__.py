"""`make bench` and `make soak`: Stageline's throughput, latency and memory against raw limits.

One run starts (or reuses) one broker and one Postgres and measures, on both: the raw producer and
raw Postgres rates (the references), ingest over HTTP, the stager, the whole pipeline, end-to-end
latency, the read API on a large dataset, and each service's memory.
"""
