"""The names TRL's vLLM client imports for vLLM < 0.28's weight transfer to a server (tests/fake_vllm/vllm/__init__.py
says why this exists). The offline tests replace the client itself; these are never called."""


class NCCLTrainerSendWeightsArgs:
    def __init__(self, **kwargs):
        raise RuntimeError("the fake vLLM has no NCCL weight transfer; a test of server mode replaces TRL's VLLMClient")


class NCCLWeightTransferEngine(NCCLTrainerSendWeightsArgs):
    pass
