"""The one network helper TRL's vLLM client imports (tests/fake_vllm/vllm/__init__.py says why this exists)."""


def get_ip() -> str:
    return "127.0.0.1"
