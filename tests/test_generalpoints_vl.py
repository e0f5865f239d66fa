"""GeneralPoints-VL (env.visual=true): the cards in an image, the paper's VL prompt, black and red suits, and the
recognised-cards check before the formula (arXiv 2501.17161; its authors' code, LeslieTrue/SFTvsRL)."""

from __future__ import annotations

import json

import pytest

from rlexp.envs import generalpoints as gp
from rlexp.envs import make
from rlexp.envs.card_images import render

SPEC_PROMPT_VL = (
    "\n[Task Description]\nYou are an expert {target_number} points card game player. You are observing these four "
    "cards in the image.\nNote that {face_card_msg}, and each card must be used once.\nYour goal is to output a formula "
    "that evaluates to {target_number} using numbers from the cards and operators such as '+', '-', '*', '/', '(', ')', "
    "and '='.\n\n[Output]\nYour response should be a valid json file in the following format:\n{{\n  \"cards\": [x, y, "
    'z, w], where {face_card_msg},\n  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,\n  '
    "\"formula\": 'an equation that equals {target_number}',\n}}\n\n"
)
DEALT = {"cards": ["4", "3", "2", "10"], "values": [4, 3, 2, 10], "target": 24}
FACES = {"cards": ["K", "Q", "A", "3"], "values": [10, 10, 1, 3], "target": 24}


def answer(cards, formula="4*3+2+10") -> str:
    return '{"cards": ' + cards + ', "formula": "' + formula + '"}'


@pytest.fixture(scope="module")
def vl():
    return make("generalpoints", visual=True, eval_size=6, train_size=6)


@pytest.fixture(scope="module")
def vl_compat():
    return make("generalpoints", visual=True, strict_original=True)


# -- prompt and rows ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["face10", "face_ood"])
def test_vl_prompt_byte_exact(rule):
    expected = SPEC_PROMPT_VL.format(target_number=24, face_card_msg=gp.FACE_CARD_MSG[rule])
    assert gp.render_prompt(["A", "3", "K", "10"], 24, rule, visual=True) == expected
    assert "[Input]" not in expected and expected.endswith("}\n\n")


def test_vl_prompt_other_card_counts():
    assert "observing these three cards in the image." in gp.render_prompt(["A", "3", "K"], 12, "face10", visual=True)
    assert "observing this card in the image." in gp.render_prompt(["5"], 5, "face10", visual=True)
    short = gp.render_short_prompt(["A", "3", "K"], 12, "face10", visual=True)
    assert short == "Cards: in the image\nMake 12 using each card once. J, Q, K count as 10.\n"


def test_vl_rows_show_the_cards_in_an_image_before_the_text(vl):
    for split in ("train", *vl.eval_splits()):
        rows = vl.dataset(split)
        assert set(rows.column_names) == {"prompt", "images", "cards", "card_ids", "values", "target", "rule", "split_key"}
        row = rows[0]
        (user,) = row["prompt"]
        image_block, text_block = user["content"]
        assert user["role"] == "user" and image_block["type"] == "image" and text_block["type"] == "text"
        rule = "face_ood" if split == "ood" else "face10"
        assert text_block["text"] == SPEC_PROMPT_VL.format(target_number=24, face_card_msg=gp.FACE_CARD_MSG[rule])
        (image,) = row["images"]
        assert image.size == (1200, 1200)
        assert image.convert("RGB").tobytes() == render(row["card_ids"]).tobytes()


def test_vl_splits_use_the_papers_suits_and_the_same_ranks(vl):
    assert vl.eval_splits() == ["id", "ood", "visual_ood"]
    ids = [" ".join(r) for r in vl.dataset("id")["card_ids"]]
    red = [" ".join(r) for r in vl.dataset("visual_ood")["card_ids"]]
    assert ids[:5] == ["SK C5 C2 C4", "C7 S5 C2 C4", "SA SQ CQ S5", "SK S5 S4 CA", "S2 S6 SA ST"]
    assert red[:5] == ["HK D5 D2 D4", "D7 H5 D2 D4", "HA HQ DQ H5", "HK H5 H4 DA", "H2 H6 HA HT"]
    assert vl.dataset("visual_ood")["cards"] == vl.dataset("id")["cards"]
    assert set(vl.dataset("visual_ood")["rule"]) == {"face10"}
    for split in ("train", "id", "ood"):
        assert {card[0] for ids in vl.dataset(split)["card_ids"] for card in ids} <= {"S", "C"}, split
    # the text variant is untouched: mixed suits, no images, no visual_ood
    text = make("generalpoints", eval_size=6)
    assert text.dataset("id")["cards"] == vl.dataset("id")["cards"] and "images" not in text.dataset("id").column_names
    with pytest.raises(ValueError, match="split must be one of 'train', 'id', 'ood'; got 'visual_ood'"):
        text.dataset("visual_ood")


def test_vl_heldout_split_shows_the_same_multisets_in_red():
    env = make("generalpoints", visual=True, split="heldout_multisets", num_cards=3, target=12)
    ids, red = env.dataset("id"), env.dataset("visual_ood")
    assert len(ids) == len(red) == len(gp.heldout_multisets(12, 3))
    assert ids["cards"] == red["cards"] and ids["split_key"] == red["split_key"]
    assert {card[0] for deal in ids["card_ids"] for card in deal} == {"S", "C"}
    assert {card[0] for deal in red["card_ids"] for card in deal} == {"H", "D"}


def test_vl_demonstrations_carry_the_image_and_name_the_cards(vl):
    for split in ("train", *vl.eval_splits()):
        rows, demos = vl.dataset(split), vl.demonstrations(split)
        assert demos.column_names == ["messages", "images"]
        for row, demo in zip(rows, demos):
            user, assistant = demo["messages"]
            assert user == row["prompt"][0] and assistant["role"] == "assistant"
            ((block,),) = [assistant["content"]]
            assert block["type"] == "text" and f'"cards": {row["cards"]!r},' in block["text"]
            assert demo["images"][0].tobytes() == row["images"][0].tobytes()
            assert vl.score(block["text"], row).success
            assert vl.score(block["text"].replace(repr(row["cards"]), "[]"), row).info["category"] == "INCORRECT_VISION"


def test_visual_must_be_a_bool():
    with pytest.raises(ValueError, match="visual must be true or false"):
        make("generalpoints", visual="yes")


# -- the recognised cards (robust mode: lenient) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cards,row,read",
    [
        ('["4", "3", "2", "10"]', DEALT, ["4", "3", "2", "10"]),
        ("[4, 3, 2, 10]", DEALT, ["4", "3", "2", "10"]),
        ("[10, 2, 3, 4]", DEALT, ["10", "2", "3", "4"]),  # any order
        ("\"['4', '3', '2', 'T']\"", DEALT, ["4", "3", "2", "10"]),  # a list-like string, T for ten
        ('["k", "q", "A", "3"]', FACES, ["K", "Q", "A", "3"]),
        ('["King", " queen ", "1", "３"]', FACES, ["K", "Q", "A", "3"]),  # names, spaces, full-width digits
    ],
)
def test_lenient_cards_match(vl, cards, row, read):
    formula = gp.solve(row["values"])[0]
    score = vl.score(answer(cards, formula), row)
    assert score.info["cards"] == read
    assert score.success, score


def test_the_papers_own_answer_format_matches(vl):
    text = gp.render_response(["4", "3", "2", "10"], [4, 3, 2, 10], "4*3+2+10", 24)  # single quotes, trailing commas
    assert vl.score(text, DEALT).reward == 5.0
    assert vl.score("<think>cards?</think>```json\n" + answer("['4', '3', '2', 'T']") + "\n```", DEALT).success


@pytest.mark.parametrize(
    "completion",
    [
        answer('["4", "3", "2"]'),
        answer('["4", "3", "2", "10", "5"]'),
        answer('["4", "3", "2", "J"]'),  # J counts 10, but it is not the card shown
        answer('["4", "3", "2", 10.0]'),
        answer("null"),
        json.dumps({"formula": "4*3+2+10"}),  # cards missing
        "4*3+2+10",
        "",
    ],
)
def test_wrong_or_missing_cards_cost_1_5_and_say_so(vl, completion):
    score = vl.score(completion, DEALT)
    assert score.reward == -1.5 and not score.success
    assert score.info["category"] == "INCORRECT_VISION" and score.info["verify_info"] == "you recognized wrong cards"
    assert score.feedback == "You failed this trial because you recognized wrong cards"


def test_the_cards_check_comes_first_and_masks_later_errors(vl):
    assert vl.score(answer('["4", "3", "2", "9"]', "4 ** 3"), DEALT).reward == -1.5  # not -3
    right_cards = vl.score(answer('["4", "3", "2", "10"]', "4*3*2"), DEALT)
    assert right_cards.reward == -2 and right_cards.info["verify_info"] == "you didn't use numbers: [10]."


def test_binary_mode_scores_wrong_cards_0():
    env = make("generalpoints", visual=True, reward_mode="binary")
    assert env.score(answer('["4", "3", "2", "9"]'), DEALT).reward == 0.0
    assert env.score(answer('["4", "3", "2", "10"]'), DEALT).reward == 1.0


def test_text_variant_ignores_cards():
    assert make("generalpoints").score(answer('["9"]'), DEALT).reward == 5.0


# -- the recognised cards (strict_original: the original's parse) -----------------------------------------------------------


@pytest.mark.parametrize(
    "completion,row,reward",
    [
        # passes: the paper's own format, and unquoted ranks when one of them is a letter
        ("{\n  \"cards\": ['4', '3', '2', '10'],\n  \"formula\": \"4*3+2+10=24\",\n}", DEALT, 5),
        ('{\n  "cards": [4, 3, 2, K],\n  "formula": "4*3+2+10=24",\n}', {**DEALT, "cards": ["4", "3", "2", "K"]}, 5),
        ('{"cards": [4,3,2,10], "formula": "4*3+2+10", }', DEALT, 5),  # no ", " to split on: kept as a string
        # fails even when right: double quotes, an all-number list, any valid JSON
        ('{"cards": ["4", "3", "2", "10"], "formula": "4*3+2+10", }', DEALT, -1.5),
        ('{"cards": [4, 3, 2, 10], "formula": "4*3+2+10", }', DEALT, -1.5),
        (answer("[4, 3, 2, 10]"), DEALT, -1.5),
        (json.dumps({"cards": ["4", "3", "2", "10"], "formula": "4*3+2+10"}), DEALT, -1.5),
        # a string inside valid JSON is read like the regex's match
        (json.dumps({"cards": "['4', '3', '2', '10']", "formula": "4*3+2+10"}), DEALT, 5),
        # wrong count, or missing
        ("{\"cards\": ['4', '3', '2'], \"formula\": \"4*3+2+10\"}", DEALT, -1.5),
        ('{"formula": "4*3+2+10"}', DEALT, -1.5),
        ("'T' for ten is not read as 10: \"cards\": ['4', '3', '2', 'T']", DEALT, -1.5),
    ],
)
def test_strict_original_reads_cards_as_the_original(vl_compat, completion, row, reward):
    score = vl_compat.score(completion, row)
    assert score.reward == reward, score
    if reward == -1.5:
        assert score.info["verify_info"] == "you recognized wrong cards"


# -- evaluation and configuration --------------------------------------------------------------------------------------------


def test_recognition_accuracy_is_the_share_of_samples_without_a_vision_error(vl):
    scores = [vl.score(answer(cards), DEALT) for cards in ('["4", "3", "2", "10"]', '["4"]', "[10, 2, 3, 4]", '["9"]')]
    assert vl.split_metrics(scores) == {"recognition_accuracy": 0.5}
    assert make("generalpoints").split_metrics(scores) == {}


def test_a_visual_env_needs_a_model_stages_and_a_mode_that_take_images():
    from hydra import compose, initialize_config_dir

    from rlexp.config import register_schemas, validate
    from rlexp.errors import ConfigError
    from rlexp.schema import CONF_DIR

    register_schemas()

    def validated(*overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            validate(compose(config_name="config", overrides=["env.visual=true", "logger=none", *overrides]), machine=False)

    with pytest.raises(ConfigError, match="model=tiny reads text only; use a vision-language model: model=tiny_vl"):
        validated()
    with pytest.raises(ConfigError, match=r"algo=iwsft \(stage iwsft\) does not train on images yet; .* use grpo, sft"):
        validated("model=tiny_vl", "algo=iwsft")
    with pytest.raises(ConfigError, match="algo=sdpo .* does not train on images"):  # a subclass of GRPO says so itself
        validated("model=tiny_vl", "algo=sdpo")
    with pytest.raises(ConfigError, match="mode=discover does not show images"):
        validated("model=tiny_vl", "algo=sdpo", "mode=discover")
    validated("model=tiny_vl", "algo=grpo")
    validated("model=tiny_vl", "algo=sft")
