"""Models and generation: where a model comes from (``registry``, ``gguf_import``), loading it
for the active backend (``loading``, ``backend``, ``cpu_kernels``), chat templates (``chat``),
batched generation with a KV cache (``generation``) and the log-probs of sampled replies
(``completions``)."""
