"""Supervised fine-tuning on the environment's demonstrations, with TRL's `SFTTrainer`.

Loss: the mean negative log-likelihood of the demonstration's answer tokens given its prompt
(the prompt is not trained on). TRL's other losses come through `loss_type`, e.g.
`algo.loss_type=dft` (Dynamic Fine-Tuning, arXiv 2508.05629: each token's loss scaled by its own
detached probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlexp.algos import register
from rlexp.algos.base import Algo
from rlexp.errors import ConfigError

if TYPE_CHECKING:
    import datasets


def as_prompt_completion(demos: datasets.Dataset) -> datasets.Dataset:
    """Split each `messages` row into the conversation so far and the final assistant turn; an `images` column
    (a vision-language environment's) stays, as TRL's SFTTrainer reads it."""

    def split(row):
        return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}

    return demos.map(split, remove_columns=[column for column in demos.column_names if column != "images"])


@dataclass
class SFT(Algo):
    learning_rate: float = 2e-5
    # > Parameters that control the loss
    # "nll" (plain SFT) or "dft"
    loss_type: str = "nll"
    # sequences longer than this many tokens are truncated
    max_length: int = 1024
    # demonstrations come from this split of the environment
    data_split: str = "train"

    trl_config = "trl.SFTConfig"
    takes_images = True  # TRL's SFTTrainer collates an `images` column with a processor

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.loss_type not in ("nll", "dft"):
            raise ConfigError(f"algo.loss_type={self.loss_type} is not one of TRL's SFT losses: nll, dft")

    def build_trainer(self, model, tokenizer, env, args):
        from trl import SFTTrainer

        demos = env.demonstrations(self.data_split)
        check_fits(demos, tokenizer, self.max_length)
        return SFTTrainer(model=model, args=args, train_dataset=as_prompt_completion(demos), processing_class=tokenizer)


def demo_lengths(demos: datasets.Dataset, tokenizer) -> list[int]:
    """Tokens in each demonstration. With images (`tokenizer` is then a processor) each image counts the tokens its
    processor expands it into, reckoned from its size: processing every picture would take longer than training."""
    if "images" not in demos.column_names:
        return [len(tokenizer.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]) for m in demos["messages"]]
    from rlexp.models import text_tokenizer  # loads transformers: not when a config is checked

    text_tokens = text_tokenizer(tokenizer)
    # processors without it (Mllama's) put one token per image in the text, which the text's count already has
    image_tokens = getattr(tokenizer, "_get_num_multimodal_tokens", None)
    lengths = []
    for messages, images in zip(demos["messages"], demos["images"]):
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        length = len(text_tokens(text, add_special_tokens=False)["input_ids"])
        if image_tokens is not None and images:  # one placeholder per image in the text, expanded by the processor
            length += sum(image_tokens(image_sizes=[(im.height, im.width) for im in images]).num_image_tokens) - len(images)
        lengths.append(length)
    return lengths


def check_fits(demos: datasets.Dataset, tokenizer, max_length: int) -> None:
    """Truncation keeps the start, so a demonstration longer than `max_length` loses its answer: refuse that."""
    lengths = demo_lengths(demos, tokenizer)
    too_long = [n for n in lengths if n > max_length]
    if too_long:
        raise ConfigError(
            f"algo.max_length={max_length} would cut the answer off {len(too_long)} of {len(lengths)} demonstrations "
            f"(the longest has {max(too_long)} tokens); raise algo.max_length (with model=tiny, also "
            f"model.max_position_embeddings)"
        )


register("sft")(SFT)
