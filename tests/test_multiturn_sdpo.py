"""Multi-turn SDPO (env.max_attempts > 1): the teacher reads each episode's last feedback, a sibling's demonstration
is its solving attempt, and the feedback turns stay out of every loss."""

import torch

from rlexp import envs, models
from rlexp.algos.sdpo import SDPO
from rlexp.schema import ModelConfig
from rlexp.trainers.sdpo import FeedbackSDPOTrainer, SolvingAttemptDecoder


def test_two_steps_of_multi_turn_sdpo_distil_on_the_models_own_tokens(tmp_path, monkeypatch):
    env = envs.make("generalpoints", max_attempts=2, num_cards=3, target=12, prompt_style="short", train_size=8)
    algo = SDPO(
        name="sdpo",
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=16,
        max_steps=2,
        distillation_weight=0.5,
        loss_type="grpo",
        learning_rate=1e-3,
    )
    algo.check(world_size=1)
    algo.check_env(env)
    tokenizer = models.byte_tokenizer()
    model = models.build_tiny(ModelConfig(max_position_embeddings=4096), tokenizer)
    trainer = algo.build_trainer(model, tokenizer, env, algo.training_args(tmp_path, 0, "fp32"))
    seen, policy_masks = [], []
    teacher_student_logits, policy_loss = trainer._compute_teacher_student_logits, FeedbackSDPOTrainer._compute_policy_loss

    def recording_logits(model, teacher, inputs):
        logits = teacher_student_logits(model, teacher, inputs)
        seen.append((inputs, logits.loss_mask))
        return logits

    def recording_policy(self, inputs, logits):  # what the episode trainer hands TRL's policy loss
        policy_masks.append(inputs["completion_mask"])
        return policy_loss(self, inputs, logits)

    trainer._compute_teacher_student_logits = recording_logits
    monkeypatch.setattr(FeedbackSDPOTrainer, "_compute_policy_loss", recording_policy)
    played, sample_rollouts = [], trainer.sample_rollouts

    def recording_rollouts(inputs):
        batch = sample_rollouts(inputs)
        played.append(([row["episode"] for row in inputs], batch))
        return batch

    trainer.sample_rollouts = recording_rollouts
    trainer.train()
    assert trainer.state.global_step == 2 and len(seen) == 2
    for inputs, loss_mask in seen:
        for row, (ids, mask, own) in enumerate(zip(inputs["completion_ids"], inputs["completion_mask"], inputs["env_mask"])):
            kept = ids[mask.bool()].tolist()
            feedback = [t for t, keep in zip(kept, own[: len(kept)].tolist()) if not keep]
            # the untrained model fails its first attempt: one feedback turn, then its second attempt
            text = tokenizer.decode(feedback)
            assert text.count("<|im_start|>user\nYou failed this trial because") == 1, text
            assert text.endswith("<|im_end|>\n<|im_start|>assistant\n"), text
            # no loss on a feedback token; every own token in the loss where the teacher had a context
            assert torch.equal(loss_mask[row], mask * own * inputs["self_distillation_mask"][row])
            # the teacher is reprompted with the last attempt's feedback and reads the same transcript
            teacher = tokenizer.decode(inputs["teacher_input_ids"][row][inputs["teacher_attention_mask"][row].bool()])
            last_feedback = text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
            assert last_feedback in teacher.split(tokenizer.decode(kept))[0]
            assert teacher.endswith(tokenizer.decode(kept))
    assert len(policy_masks) == 2
    for mask, (inputs, _) in zip(policy_masks, seen):  # the policy term's mask leaves the feedback turns out too
        assert torch.equal(mask, inputs["completion_mask"] * inputs["env_mask"]) and not torch.equal(
            mask, inputs["completion_mask"]
        )
    for episodes_, batch in played:  # each rollout is rewarded with its episode's return (sum over its attempts)
        assert all(e.attempts == 2 for e in episodes_)
        assert batch["rewards"].tolist() == [sum(s.reward for s in e.scores) for e in episodes_]


def test_a_siblings_demonstration_is_its_solving_attempt_not_its_transcript():
    tokenizer = models.byte_tokenizer()
    transcript = tokenizer("first try<|im_end|>\n<|im_start|>user\nwrong<|im_end|>\n<|im_start|>assistant\nsecond")["input_ids"]
    decoder = SolvingAttemptDecoder(tokenizer, {tuple(transcript): "second"})
    assert decoder.decode(torch.tensor(transcript), skip_special_tokens=True) == "second"
    other = tokenizer("another")["input_ids"]
    assert decoder.decode(torch.tensor(other), skip_special_tokens=True) == "another"
    assert decoder.pad_token_id == tokenizer.pad_token_id
