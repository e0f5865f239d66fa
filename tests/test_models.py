import pytest
import torch

from rlexp.envs.card_images import render
from rlexp.errors import ConfigError
from rlexp.models import (
    VISION_TOKENS,
    ImageTextProcessor,
    ModelConfig,
    build_tiny,
    byte_tokenizer,
    generation_inputs,
    load,
    mrope_section,
    text_tokenizer,
    tiny_processor,
)
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


# -- the tiny vision-language model (model=tiny_vl) ----------------------------------------------------------------------

VL = ModelConfig(name="tiny_vl", vision=True, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def vl_prompt(text="which cards?"):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def test_vision_tokens_come_after_the_text_tokenizers_ids():
    text, vision = byte_tokenizer(), byte_tokenizer(vision=True)
    assert len(vision) == len(text) + len(VISION_TOKENS)
    assert {t: i for t, i in vision.get_vocab().items() if t not in VISION_TOKENS} == text.get_vocab()
    assert min(vision.convert_tokens_to_ids(VISION_TOKENS)) == len(text)
    assert vision("4*3 <|image_pad|>", add_special_tokens=False)["input_ids"][-1] == vision.convert_tokens_to_ids("<|image_pad|>")


def test_tiny_vl_processor_renders_an_image_as_qwen2_vl_does_and_scales_it_down():
    processor = tiny_processor(VL)
    text = processor.apply_chat_template(vl_prompt(), add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>which cards?<|im_end|>\n<|im_start|>assistant\n"
    enc = generation_inputs(processor, [vl_prompt()], [[render(["SA", "C3", "HK", "DT"])]])
    # 1200x1200 -> 196x196: 14x14 patches of 14 px, merged 2x2 into 49 image tokens
    assert enc["image_grid_thw"].tolist() == [[1, 14, 14]]
    assert (enc["input_ids"] == processor.image_token_id).sum() == 49
    assert VL.max_image_pixels == 224 * 224


def test_mrope_section_keeps_qwen2_vls_proportions():
    assert mrope_section(128) == [16, 24, 24]  # Qwen2-VL's own, for its 128-wide heads
    assert mrope_section(32) == [4, 6, 6] and sum(mrope_section(16)) == 8


def test_tiny_vl_sizes_come_from_the_config_and_init_is_seeded():
    a, processor = load(VL)
    b, _ = load(VL)
    assert isinstance(processor, ImageTextProcessor) and text_tokenizer(processor) is processor.tokenizer
    assert a.config.text_config.hidden_size == 32 and a.config.text_config.num_hidden_layers == 2
    assert a.config.vision_config.embed_dim == 32 and a.config.vision_config.depth == 2
    assert a.config.text_config.vocab_size == len(processor.tokenizer)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_the_image_reaches_the_model():
    model, processor = load(VL)
    prompts = [vl_prompt(), vl_prompt()]
    black, red = render(["SK", "C5", "C2", "C4"]), render(["HK", "D5", "D2", "D4"])
    with torch.no_grad():
        same = model(**generation_inputs(processor, prompts, [[black], [black]])).logits[:, -1]
        other = model(**generation_inputs(processor, prompts, [[black], [red]])).logits[:, -1]
    assert torch.allclose(same[0], same[1]) and torch.allclose(same[0], other[0])
    assert not torch.allclose(other[0], other[1], atol=1e-5)


def test_evaluation_generates_from_images():
    from rlexp.evaluate import generate

    model, processor = load(VL)
    images = [[render(["SA", "C3", "HK", "DT"])], [render(["HA", "D3", "HK", "DT"])]]
    out = generate(model, processor, [vl_prompt(), vl_prompt("again")], 2, 1.0, 4, 3, "test", images)
    assert [len(samples) for samples in out] == [2, 2] and all(isinstance(s, str) for samples in out for s in samples)


def test_tiny_vl_checkpoint_round_trip(tmp_path):
    model, processor = load(VL)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, processor2 = load(VL, checkpoint=str(tmp_path))
    assert type(again) is type(model) and processor2.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_demo_lengths_count_the_tokens_an_image_becomes():
    from rlexp.algos.sft import demo_lengths
    from rlexp.envs import make

    processor = tiny_processor(VL)
    demos = make("generalpoints", visual=True, train_size=3).demonstrations("train")
    processed = [
        processor(text=[processor.apply_chat_template(m, tokenize=False)], images=[im], add_special_tokens=False)
        for m, im in zip(demos["messages"], demos["images"])
    ]
    assert demo_lengths(demos, processor) == [len(p["input_ids"][0]) for p in processed]


def test_chat_template_kwargs_are_defaults_of_the_template_that_a_caller_can_still_override():
    from rlexp.models import with_chat_template_defaults

    tokenizer = byte_tokenizer()
    tokenizer.chat_template = "{% if enable_thinking %}think{% else %}answer{% endif %} {{ effort }}"
    with_chat_template_defaults(tokenizer, {"enable_thinking": False, "effort": "low"})
    chat = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == "answer low"
    assert tokenizer.apply_chat_template(chat, tokenize=False, enable_thinking=True) == "think low"  # as TRL passes them
    with_chat_template_defaults(tokenizer, {"enable_thinking": True})  # a later default (a checkpoint reloaded) wins
    assert tokenizer.apply_chat_template(chat, tokenize=False) == "think low"
