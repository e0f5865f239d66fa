"""Models and tokenizers: the offline `tiny` and `tiny_vl` models, a hub model, or a checkpoint of an earlier run.

`model=tiny` builds a small Qwen2-architecture causal LM from a config, with a byte-level
tokenizer defined here (256 byte tokens, no merges, plus ChatML special tokens), so tests and
the demo never touch the network. `model=tiny_vl` builds a small Qwen2-VL model the same way, with a
processor defined here (Qwen2-VL's image processor, the byte-level tokenizer plus Qwen2-VL's vision tokens).
Other `model=` configs name a hub id and load with `from_pretrained`.
"""

from __future__ import annotations

import importlib.util
import json

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers import models as tok_models
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

from rlexp.schema import ModelConfig

# ChatML, as Qwen uses it; `generation` marks let TRL's assistant_only_loss find the answer. A message's content is a
# string or, for a vision-language model, a list of blocks, each image rendered as Qwen2-VL renders it (the processor
# then repeats <|image_pad|> once per image token).
CHAT_TEMPLATE = (
    "{% macro render(content) %}{% if content is string %}{{ content }}{% else %}{% for block in content %}"
    "{% if block['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endmacro %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ render(message['content']) + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ render(message['content']) + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2-VL's: an image is <|vision_start|>, its <|image_pad|> tokens, <|vision_end|> (videos are not used, but the
# processor and the model config name their token)
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def byte_tokenizer(vision: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: any text round-trips, with no vocabulary file to download. `vision` adds
    Qwen2-VL's vision tokens after the others, so the text tokenizer's ids stay as they are."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(tok_models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left")
    fast.add_special_tokens(
        {
            "pad_token": "<|endoftext|>",
            "eos_token": "<|im_end|>",
            "additional_special_tokens": ["<|im_start|>", *(VISION_TOKENS if vision else [])],
        }
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


class ImageTextProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor for images and text only: transformers' own also requires a video processor, which
    needs torchvision, a dependency rlexp does without."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def tiny_processor(cfg: ModelConfig) -> ImageTextProcessor:
    """The tiny vision model's processor: Qwen2-VL's image processor, scaling images to `max_image_pixels`, and the
    byte-level tokenizer with the vision tokens."""
    image_processor = Qwen2VLImageProcessorPil(max_pixels=cfg.max_image_pixels)
    return ImageTextProcessor(image_processor=image_processor, tokenizer=byte_tokenizer(vision=True), chat_template=CHAT_TEMPLATE)


def language_model_sizes(cfg: ModelConfig, tokenizer) -> dict:
    """The tiny language model's config, as `cfg` sizes it, with the tokenizer's vocabulary and special tokens."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def seeded_model(model_class, config, cfg: ModelConfig, tokenizer):
    """`model_class(config)` with the random weights of `cfg.init_seed`, generating until the tokenizer's eos."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        model = model_class(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tiny(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    config = Qwen2Config(**language_model_sizes(cfg, tokenizer), tie_word_embeddings=True)
    config._attn_implementation = attention(cfg, Qwen2ForCausalLM)
    return seeded_model(Qwen2ForCausalLM, config, cfg, tokenizer).to(getattr(torch, cfg.dtype))


def attention(cfg: ModelConfig, model_class=None) -> str:
    """The attention kernel `cfg.attn_implementation` names; auto is flash_attention_2 on a GPU where the flash_attn
    package is installed and `model_class` supports it (Mllama does not), else torch's sdpa. rlexp/config.py refuses
    flash_attention_2 named where it cannot run."""
    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    return "flash_attention_2" if flash_installed() and getattr(model_class, "_supports_flash_attn", True) else "sdpa"


def flash_installed() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def from_pretrained(auto_class, source: str, cfg: ModelConfig):
    """`auto_class.from_pretrained(source)` with `cfg`'s dtype and attention kernel."""
    model_class = None
    if cfg.attn_implementation == "auto" and flash_installed():  # the class it builds: does it take flash attention?
        found = auto_class._model_mapping[type(AutoConfig.from_pretrained(source))]
        model_class = found[0] if isinstance(found, (list, tuple)) else found
    return auto_class.from_pretrained(source, dtype=getattr(torch, cfg.dtype), attn_implementation=attention(cfg, model_class))


def mrope_section(head_dim: int) -> list[int]:
    """How Qwen2-VL splits a head's rotary frequencies among time, height and width: in Qwen2-VL's proportions
    (16, 24, 24 of 64), for a head of any size."""
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def build_tiny_vl(cfg: ModelConfig, processor: ImageTextProcessor) -> Qwen2VLForConditionalGeneration:
    """A Qwen2-VL model whose language model has the sizes of `cfg` (as `build_tiny`'s) and whose vision tower is as
    wide, as deep and has as many heads."""
    tokenizer = processor.tokenizer
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope_section(cfg.hidden_size // cfg.num_heads)}
    vision = {
        "depth": cfg.num_layers,
        "embed_dim": cfg.hidden_size,
        "hidden_size": cfg.hidden_size,  # what the vision tower hands the language model
        "num_heads": cfg.num_heads,
        "mlp_ratio": max(1, cfg.intermediate_size // cfg.hidden_size),
    }
    config = Qwen2VLConfig(
        text_config={**language_model_sizes(cfg, tokenizer), "rope_parameters": rope},
        vision_config=vision,
        image_token_id=processor.image_token_id,
        video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    config._attn_implementation = attention(cfg, Qwen2VLForConditionalGeneration)
    return seeded_model(Qwen2VLForConditionalGeneration, config, cfg, tokenizer).to(getattr(torch, cfg.dtype))


def text_tokenizer(processing_class):
    """The tokenizer itself, or the one a processor holds (its pad and eos tokens, its decoding)."""
    return processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class


def generation_inputs(processing_class, prompts: list, images: list | None = None):
    """Tensors to generate replies to chat `prompts` from, left-padded; `images`, one list per prompt, need a processor."""
    texts = [processing_class.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    with_images = {} if images is None else {"images": images}
    return processing_class(text=texts, return_tensors="pt", padding=True, add_special_tokens=False, **with_images)


def template_defaults(template: str, defaults: dict) -> str:
    """`template` with `defaults` for its variables: a value given when it is rendered (TRL's chat_template_kwargs)
    still wins. Jinja's `set` outside a loop is seen by the whole template."""
    lines = []
    for name, value in defaults.items():
        literal = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{{%- if {name} is not defined %}}{{%- set {name} = {literal} %}}{{%- endif %}}")
    return "".join(lines) + template


def with_chat_template_defaults(processing_class, defaults: dict):
    """The tokenizer or processor (and a processor's tokenizer) rendering its chat template with `defaults`."""
    tokenizer = text_tokenizer(processing_class)
    holders = [processing_class] if tokenizer is processing_class else [processing_class, tokenizer]
    if defaults:
        for holder in holders:
            if getattr(holder, "chat_template", None):
                holder.chat_template = template_defaults(holder.chat_template, defaults)
    return processing_class


def load(cfg: ModelConfig, checkpoint: str | None = None):
    """Return (model, tokenizer) as `_load` gives them, the chat template rendering with `cfg.chat_template_kwargs`.
    A checkpoint's template may hold earlier defaults: these come first, so they win."""
    model, processing_class = _load(cfg, checkpoint)
    return model, with_chat_template_defaults(processing_class, cfg.chat_template_kwargs)


def load_tokenizer(cfg: ModelConfig, checkpoint: str | None = None):
    """The tokenizer (a processor for a vision-language model) `load` gives, without loading the model."""
    return with_chat_template_defaults(_processing_class(cfg, checkpoint), cfg.chat_template_kwargs)


def _processing_class(cfg: ModelConfig, checkpoint: str | None = None):
    """The tokenizer, or for a vision-language model (`cfg.vision`) the processor, as TRL's trainers take it: from
    `checkpoint` if given, else as `cfg` describes; padding on the left, for generation."""
    source = checkpoint or cfg.pretrained
    if cfg.vision and cfg.pretrained is None:
        # the tiny model's processor has nothing trained: it is built here again rather than read back, which
        # AutoProcessor could not do without torchvision (see ImageTextProcessor)
        return tiny_processor(cfg)
    if source is None:
        return byte_tokenizer()
    processing_class = (AutoProcessor if cfg.vision else AutoTokenizer).from_pretrained(source)
    tokenizer = text_tokenizer(processing_class)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return processing_class


def _load(cfg: ModelConfig, checkpoint: str | None = None):
    """Return (model, tokenizer or processor): from `checkpoint` if given, else as `cfg` describes."""
    source = checkpoint or cfg.pretrained
    if source is None:
        processing_class = _processing_class(cfg)
        build = build_tiny_vl if cfg.vision else build_tiny
        return build(cfg, processing_class), processing_class
    model = from_pretrained(AutoModelForImageTextToText if cfg.vision else AutoModelForCausalLM, source, cfg)
    return model, _processing_class(cfg, checkpoint)
