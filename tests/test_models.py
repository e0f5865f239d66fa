import pytest
import torch

from rlexp.errors import ConfigError
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer, load
from rlexp.schema import check_available


def test_byte_tokenizer_round_trips_any_text():
    tok = byte_tokenizer()
    for text in ["4*3+2+10=24", "héllo ４ ×÷", "nul\x00byte", "{'cards': ['A', 'K']}\n\n  x"]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_marks_the_answer_and_ends_it_with_eos():
    tok = byte_tokenizer()
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id != tok.eos_token_id


def test_tiny_model_sizes_come_from_the_config_and_init_is_seeded():
    tok = byte_tokenizer()
    cfg = ModelConfig(hidden_size=32, num_layers=3, num_heads=2, intermediate_size=64)
    a, b = build_tiny(cfg, tok), build_tiny(cfg, tok)
    assert a.config.hidden_size == 32 and a.config.num_hidden_layers == 3 and a.config.vocab_size == len(tok)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build_tiny(ModelConfig(hidden_size=32, num_layers=3, num_heads=2, intermediate_size=64, init_seed=1), tok)
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_checkpoint_round_trip(tmp_path):
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model, tok = load(cfg)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load(cfg, checkpoint=str(tmp_path))
    assert tok2.padding_side == "left" and tok2.chat_template == tok.chat_template
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_hub_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="model=tiny"):
        check_available(ModelConfig(name="qwen", pretrained="Qwen/Qwen2.5-0.5B-Instruct"))
    check_available(ModelConfig())  # tiny needs nothing
