"""rlexp: a Hydra-configured experiment framework for LLM post-training on TRL."""

__version__ = "0.1.0"
