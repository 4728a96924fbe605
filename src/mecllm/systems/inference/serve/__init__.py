"""`mecllm serve`: a placement plan of the edge-inference system served for real
(docs/serving.md)."""
