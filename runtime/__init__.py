"""What runs in the inference image: batcher, KServe v2 server, metrics, worker, profiler."""
