"""The benchmarks' data: ``sources`` (where each axis's files are found), ``hub`` (pinned Hugging Face
Hub downloads), ``tables`` (parquet, JSON lines, JSON, CSV -> rows), ``loaders`` and ``truthfulqa``
(rows -> items), ``commands`` (`hmx-mlx data pull` / `list`)."""
