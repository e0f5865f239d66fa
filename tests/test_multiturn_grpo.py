"""Multi-turn GRPO (env.max_attempts > 1): 2 steps on every environment with the tiny model, rewarded by the
episodes' returns, with the feedback turns out of the loss."""

import pytest
import torch

from rlexp import envs, models
from rlexp.algos.grpo import GRPO
from rlexp.evaluate import evaluate
from rlexp.schema import EvalConfig, ModelConfig

# what makes an environment small (as in test_smoke.py)
ENV_KNOBS = {
    "generalpoints": {"num_cards": 3, "target": 12, "prompt_style": "short", "train_size": 8},
    "livecode": {"time_limit": 2.0},
    "math": {"difficulty": 1, "train_size": 8, "eval_size": 4},
    "synlogic": {"difficulty": 1, "train_size": 8, "eval_size": 4},
}


@pytest.mark.parametrize("env_name", envs.names())
def test_two_steps_of_multi_turn_grpo(tmp_path, env_name):
    env = envs.make(env_name, max_attempts=2, **ENV_KNOBS.get(env_name, {}))
    algo = GRPO(
        name="grpo", per_device_train_batch_size=4, num_generations=2, max_completion_length=16, max_steps=2, learning_rate=1e-3
    )
    algo.check(world_size=1)
    tokenizer = models.byte_tokenizer()
    model = models.build_tiny(ModelConfig(max_position_embeddings=4096), tokenizer)
    trainer = algo.build_trainer(model, tokenizer, env, algo.training_args(tmp_path, 0, "fp32"))
    seen = []
    compute_loss = trainer._compute_loss

    def recording(model, inputs):
        seen.append(inputs)
        return compute_loss(model, inputs)

    trainer._compute_loss = recording
    trainer.train()
    assert trainer.state.global_step == 2 and len(seen) == 2
    for inputs in seen:
        for ids, mask, in_loss in zip(inputs["completion_ids"], inputs["completion_mask"], inputs["tool_mask"]):
            ids = ids[mask.bool()].tolist()
            feedback = [t for t, keep in zip(ids, in_loss[: len(ids)].tolist()) if not keep]
            # the untrained model fails its first attempt: one feedback turn, out of the loss, then its second attempt
            text = tokenizer.decode(feedback)
            assert text.count("<|im_start|>user\n") == 1 and text.endswith("<|im_end|>\n<|im_start|>assistant\n"), text
            assert sum(in_loss[: len(ids)].tolist()) == len(ids) - len(feedback) > 0
    logged = {k: v for row in trainer.state.log_history for k, v in row.items()}
    assert logged[f"{env_name}/attempts"] == 2.0


def test_card_images_reach_every_attempt_of_a_multi_turn_episode(tmp_path):
    env = envs.make("generalpoints", visual=True, max_attempts=2, num_cards=3, target=12, prompt_style="short", train_size=8)
    # two prompts of two episodes each: the prompts' ids are the same (the cards are only in the picture)
    algo = GRPO(name="grpo", per_device_train_batch_size=4, num_generations=2, max_completion_length=8, max_steps=1)
    cfg = ModelConfig(name="tiny_vl", vision=True, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    model, processor = models.load(cfg)
    trainer = algo.build_trainer(model, processor, env, algo.training_args(tmp_path, 0, "fp32"))
    generated, generate = [], model.generate

    def recording(**inputs):
        generated.append((inputs, [row["images"] for row in trainer._rows] if trainer._rows else None))
        return generate(**inputs)

    def pixels(images):
        return processor.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def assert_each_sequence_has_its_own_picture(inputs, pictures):
        grid = inputs["image_grid_thw"]
        assert len(grid) == len(inputs["input_ids"]) == len(pictures)
        per_image = list(inputs["pixel_values"].split(grid.prod(dim=1).tolist()))
        assert all(torch.equal(got, pixels(own).to(got.dtype)) for got, own in zip(per_image, pictures))
        # each sequence holds its image's tokens (4 patches merge into one token)
        assert ((inputs["input_ids"] == image_pad).sum(dim=1) == grid.prod(dim=1) // 4).all()

    model.generate = recording
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    trainer.train()
    # the untrained model fails its first attempt: two rounds, each generating from each episode's own picture
    assert len(generated) == 2
    for inputs, pictures in generated:
        assert_each_sequence_has_its_own_picture(inputs, pictures)
        assert not torch.equal(pixels(pictures[0]), pixels(pictures[2]))  # the two prompts' pictures differ
    assert generated[1][0]["input_ids"].shape[1] > generated[0][0]["input_ids"].shape[1]  # round 2 reads round 1

    # evaluation plays the same episodes, each attempt with its own prompt's picture
    generated.clear()
    eval_cfg = EvalConfig(splits=["visual_ood"], num_prompts=2, num_samples=1, k=[1], max_new_tokens=8, batch_size=2)
    metrics = evaluate(model, processor, env, eval_cfg)["visual_ood"]
    assert metrics["mean_attempts"] == 2.0 and len(generated) == 2
    for inputs, _ in generated:
        assert_each_sequence_has_its_own_picture(inputs, env.dataset("visual_ood")["images"][:2])
        assert inputs["mm_token_type_ids"].shape == inputs["input_ids"].shape


def test_vllm_evaluation_passes_the_card_image_with_every_attempt(fake_vllm):
    from rlexp.evaluate import VLLMGenerator

    env = envs.make("generalpoints", visual=True, max_attempts=2, num_cards=3, target=12, prompt_style="short", eval_size=2)
    processor = models.load_tokenizer(ModelConfig(name="tiny_vl", vision=True))
    cfg = EvalConfig(splits=["id"], num_prompts=2, num_samples=2, k=[1], max_new_tokens=8)
    metrics = evaluate(VLLMGenerator(fake_vllm.LLM(model="tiny_vl"), processor, cfg), processor, env, cfg)["id"]
    calls = [e for e in fake_vllm.RECORD if e["event"] == "generate"]
    # the fake's answers fail: two rounds of four episodes, every request with its prompt's image and image tokens
    assert metrics["mean_attempts"] == 2.0 and [c["num_prompts"] for c in calls] == [4, 4]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for call in calls:
        assert call["multi_modal"] == [1, 1, 1, 1]
        assert all(prompt.count(image_pad) > 0 for prompt in call["prompts"])
