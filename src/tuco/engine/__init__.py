"""Algorithm 1 inside a real model: the layer wrapper, the recorder, alpha, the layer registry, LoRA sharing,
one-query attention, metrics."""
