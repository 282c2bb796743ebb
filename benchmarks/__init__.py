"""Benchmarks of mrag: speed against the machine's physical limit and against onnxruntime.

Run ``python -m benchmarks --help``. Sections:

- ``ceiling``: measured GEMM throughput (float32, bfloat16) at the model's own matrix shapes;
- ``model``: images/s and tokens/s of both towers, achieved GFLOP/s and the ratio to the ceiling;
- ``peer``: the same towers exported to ONNX and run by onnxruntime (float32 and dynamic int8);
- ``ingestion``: ``mrag.ingest`` end to end on a PDF set, time split by phase, padding waste;
- ``query``: end-to-end query latency (embedding + hybrid search) on embedded stores of growing
  size;
- ``store``: the store alone, Qdrant Edge beside qdrant-client's local mode: fill, disk, memory,
  search latency and recall@10 before and after the HNSW build, at 10k, 100k and 1M points.

Results go to a table on stdout and to JSON (``benchmarks/results/latest.json`` by default).
"""

SECTIONS: tuple[str, ...] = ("ceiling", "model", "peer", "ingestion", "query", "store")
