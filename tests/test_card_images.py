"""The GP-VL card pictures: the paper's table geometry, suit colours, and the same pixels on every render."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from rlexp.envs import card_images as ci

GREEN = Image.new("RGB", (1, 1), ci.TABLE_GREEN).getpixel((0, 0))
DEAL = ["SA", "C3", "HK", "DT"]
HASH_SCRIPT = (
    "import hashlib; from rlexp.envs.card_images import render; print(hashlib.sha256(render({deal!r}).tobytes()).hexdigest())"
)


def pixel_hash(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def color_counts(card: Image.Image) -> tuple[int, int]:
    """(red-ink pixels, black-ink pixels) of one card's picture (its opaque pixels)."""
    r, g, b, a = np.asarray(card.convert("RGBA")).astype(int).transpose(2, 0, 1)
    opaque = a == 255
    red = opaque & (r > 150) & (g < 90) & (b < 90)
    black = opaque & (r < 60) & (g < 60) & (b < 60)
    return int(red.sum()), int(black.sum())


def test_the_same_deal_gives_the_same_pixels_every_time():
    first = pixel_hash(ci.render(DEAL))
    ci.card_image.cache_clear()
    ci.suit_mask.cache_clear()
    assert pixel_hash(ci.render(DEAL)) == first
    # another process, another hash seed: nothing in the drawing depends on the process
    again = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT.format(deal=DEAL)],
        cwd=ROOT, env={"PYTHONHASHSEED": "123", "PATH": ""}, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == first
    assert pixel_hash(ci.render(["SA", "C3", "HK", "D9"])) != first


def test_the_table_has_the_papers_size_colour_and_four_slots():
    image = ci.render(DEAL)
    assert image.size == (1200, 1200) and image.mode == "RGB"
    assert ci.card_size(4) == (270, 378)
    assert ci.slots(4) == [(5, 411), (302, 411), (599, 411), (896, 411)]
    for x, y in ci.slots(4):
        # inside each slot: a white card with a grey border; just outside it: the green table
        assert image.getpixel((x + 135, y + 2)) == (255, 255, 255)
        assert image.getpixel((x + 135, y)) != GREEN
        assert image.getpixel((x + 135, y - 1)) == GREEN
        assert image.getpixel((x + 135, y + 378)) == GREEN
    assert image.getpixel((1199, 600)) == GREEN and image.getpixel((600, 100)) == GREEN


@pytest.mark.parametrize("rank", ci.RANKS)
def test_hearts_and_diamonds_are_red_spades_and_clubs_black(rank):
    size = ci.card_size(4)
    for suit in ci.SUITS:
        red, black = color_counts(ci.card_image(rank, suit, size))
        if suit in ("H", "D"):
            assert red > 2000 and black < 100, (rank, suit, red, black)
        else:
            assert black > 2000 and red == 0, (rank, suit, red, black)


def test_every_card_differs_and_cards_land_in_their_slots():
    size = ci.card_size(4)
    hashes = {pixel_hash(ci.card_image(rank, suit, size)) for rank in ci.RANKS for suit in ci.SUITS}
    assert len(hashes) == 52
    image = ci.render(["HK", "SA", "SA", "DT"])
    (x0, y0), (x1, _), (x2, _), (x3, _) = ci.slots(4)

    def crop(x):
        return image.crop((x, y0, x + 270, y0 + 378))

    assert pixel_hash(crop(x1)) == pixel_hash(crop(x2))  # the same card twice
    assert color_counts(crop(x0))[0] > 2000 and color_counts(crop(x1))[0] == 0 and color_counts(crop(x3))[0] > 2000


def test_other_card_counts_fit_the_table():
    for n in (1, 2, 3, 5, 6):
        width, height = ci.card_size(n)
        last_x, y = ci.slots(n)[-1]
        assert last_x + width <= 1200 and 0 <= y and y + height <= 1200
    assert ci.render(["SA"] * 6).size == (1200, 1200)


@pytest.mark.parametrize("bad", ["XA", "S1", "S", "SAA", "s2", ""])
def test_a_bad_card_id_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="not a card id"):
        ci.render([bad])


def test_png_round_trips_the_picture():
    import io

    assert pixel_hash(Image.open(io.BytesIO(ci.render_png(DEAL))).convert("RGB")) == pixel_hash(ci.render(DEAL))
