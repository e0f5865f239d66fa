import pickle

from rlexp import envs
from rlexp.rewards import EnvReward

ROW = {"values": [4, 3, 2, 10], "target": 24, "cards": ["4", "3", "2", "K"], "rule": "face10"}
RIGHT, WRONG = '{"formula": "4*3+2+10=24"}', '{"formula": "4*3*2*10"}'


def call(reward, completions, **extra):
    n = len(completions)
    columns = {k: [v] * n for k, v in ROW.items()}
    return reward(prompts=["p"] * n, completions=completions, trainer_state=object(), **columns, **extra)


def test_reward_function_pickles_and_keeps_its_knobs():
    reward = pickle.loads(pickle.dumps(EnvReward("generalpoints", reward_mode="binary")))
    assert reward.__name__ == "generalpoints_reward"
    assert call(reward, [RIGHT, WRONG]) == [1.0, 0.0]


def test_both_completion_shapes_give_the_env_score():
    reward = EnvReward("generalpoints")
    env = envs.make("generalpoints")
    expected = [env.score(RIGHT, ROW).reward, env.score(WRONG, ROW).reward]
    assert call(reward, [RIGHT, WRONG]) == expected == [5.0, -1.0]
    chat = [[{"role": "assistant", "content": RIGHT}], [{"role": "assistant", "content": WRONG}]]
    assert call(reward, chat) == expected


def test_categories_and_feedback_reach_the_logs():
    extra, metrics = {}, {}
    call(EnvReward("generalpoints"), [RIGHT, WRONG, "no json"],
         log_extra=lambda k, v: extra.__setitem__(k, v), log_metric=lambda k, v: metrics.__setitem__(k, v))  # fmt: skip
    assert extra["category"] == ["CORRECT_SOLUTION", "NO_SOLUTION", "ILLEGAL_FORMULA"]
    assert extra["feedback"][0] == "" and extra["feedback"][1].startswith("You failed this trial because")
    assert metrics["generalpoints/success"] == 1 / 3
