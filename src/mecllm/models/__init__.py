"""The models the systems' runtimes run, shared below the systems: the contract every adapted
encoder keeps (:mod:`~mecllm.models.encoder`), the packaged MiniLM written out by hand
(:mod:`~mecllm.models.minilm`), any local model directory through transformers and peft
(:mod:`~mecllm.models.hf_model`) and MiniLM's blocks as causal shards with KV caches
(:mod:`~mecllm.models.causal`). They need the ``train`` extra (torch); nothing here knows a
system."""
