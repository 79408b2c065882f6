"""Pure-torch Wan 2.1 / 2.2 VAEs with a causal feature cache (+ offload), streaming and tiling drivers."""
