"""vLLM's structured-output parameters, as TRL imports them (tests/fake_vllm/vllm/__init__.py says why this exists)."""


class StructuredOutputsParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
