"""Pictures of dealt cards for GeneralPoints-VL, drawn with Pillow alone: no card art, no font file.

The table's geometry is the paper's (arXiv 2501.17161; its authors' gym_cards environment): a 1200x1200 green
canvas, 4 cards of 270x378 side by side, vertically centred. The cards are rlexp's own drawing (the original's card
PNGs have no licence): a white rounded card with the rank and suit in two corners and a large rank and suit in the
middle, so J, Q and K differ by their letter rather than by court art. Suits are shapes, so only the ranks need a
font, Pillow's built-in scalable one.
"""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

CANVAS_SIZE = 1200
TABLE_GREEN = "#35654d"
RED = "#C8102E"
BLACK = "#111111"
CARD_WHITE = "#FFFFFF"
BORDER_GREY = "#3C3C3C"
RED_SUITS = ("H", "D")
SUITS = ("H", "D", "S", "C")
RANKS = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")

# shapes are drawn this many times larger, then scaled down: Pillow draws polygons and circles without anti-aliasing
_SUPERSAMPLE = 4


def card_size(num_cards: int) -> tuple[int, int]:
    """Width and height of each card: the paper's 270x378 (width int(1200/4*0.9), aspect 5:7) up to 4 cards,
    narrower beyond so that every card fits the canvas."""
    width = int(CANVAS_SIZE / max(num_cards, 4) * 0.9)
    return width, int(width * 1.4)


def slots(num_cards: int) -> list[tuple[int, int]]:
    """Top-left corner of each card on the canvas: x = 5 + int(i * width * 1.1), vertically centred (y = 411 for 270x378)."""
    width, height = card_size(num_cards)
    return [(5 + int(i * width * 1.1), (CANVAS_SIZE - height) // 2) for i in range(num_cards)]


def parse_card_id(card_id: str) -> tuple[str, str]:
    """(rank, suit) of a GeneralPoints card id: the suit letter, then the rank with T for ten ("HT" -> ("10", "H"))."""
    suit, rank = card_id[:1], card_id[1:]
    rank = "10" if rank == "T" else rank
    if suit not in SUITS or rank not in RANKS:
        raise ValueError(f"not a card id: {card_id!r} (a suit of {''.join(SUITS)}, then A, 2..9, T, J, Q or K)")
    return rank, suit


def suit_color(suit: str) -> str:
    return RED if suit in RED_SUITS else BLACK


@functools.lru_cache(maxsize=None)
def suit_mask(suit: str, size: int) -> Image.Image:
    """The suit's shape as a size x size greyscale mask (255 inside)."""
    s = size * _SUPERSAMPLE
    big = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(big)

    def circle(cx: float, cy: float, r: float) -> None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)

    def polygon(*points: tuple[float, float]) -> None:
        draw.polygon([(x * s, y * s) for x, y in points], fill=255)

    if suit == "H":  # two lobes on top, a point below
        circle(0.28 * s, 0.34 * s, 0.25 * s)
        circle(0.72 * s, 0.34 * s, 0.25 * s)
        polygon((0.04, 0.42), (0.96, 0.42), (0.5, 0.96))
    elif suit == "D":
        polygon((0.5, 0.02), (0.86, 0.5), (0.5, 0.98), (0.14, 0.5))
    elif suit == "S":  # a heart upside down, on a stem
        circle(0.28 * s, 0.56 * s, 0.23 * s)
        circle(0.72 * s, 0.56 * s, 0.23 * s)
        polygon((0.06, 0.50), (0.94, 0.50), (0.5, 0.02))
        polygon((0.5, 0.55), (0.64, 0.98), (0.36, 0.98))
    elif suit == "C":  # three leaves on a stem
        circle(0.5 * s, 0.27 * s, 0.21 * s)
        circle(0.26 * s, 0.56 * s, 0.21 * s)
        circle(0.74 * s, 0.56 * s, 0.21 * s)
        circle(0.5 * s, 0.5 * s, 0.12 * s)  # fills the gap where the leaves meet
        polygon((0.5, 0.45), (0.64, 0.98), (0.36, 0.98))
    else:
        raise ValueError(f"not a suit: {suit!r}")
    return big.resize((size, size), Image.LANCZOS)


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _corner_index(rank: str, suit: str, width: int, height: int) -> Image.Image:
    """The rank above a small suit, on a transparent tile, as printed in a card's corner."""
    tile = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    color = suit_color(suit)
    rank_size = round(height * 0.55)
    draw.text((width / 2, 0), rank, fill=color, font=_font(rank_size), anchor="mt")
    pip = round(height * 0.36)
    tile.paste(color, ((width - pip) // 2, height - pip), suit_mask(suit, pip))
    return tile


@functools.lru_cache(maxsize=None)
def card_image(rank: str, suit: str, size: tuple[int, int]) -> Image.Image:
    """One card, RGBA (transparent outside its rounded corners), `size` = (width, height)."""
    width, height = size
    scale = width / 270  # the sizes below are for the paper's 270-pixel card
    card = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(card)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=round(18 * scale), fill=CARD_WHITE, outline=BORDER_GREY, width=2)
    # corner index top-left and, turned half a circle, bottom-right, as on a real card
    index = _corner_index(rank, suit, round(74 * scale), round(108 * scale))
    margin = round(8 * scale)
    card.alpha_composite(index, (margin, margin))
    card.alpha_composite(index.rotate(180), (width - margin - index.width, height - margin - index.height))
    # the large centre rank and suit, readable after the image is scaled down for a model
    color = suit_color(suit)
    rank_size = 150 if len(rank) == 1 else 120  # "10" at 150 px would touch the corner's suit
    draw.text((width / 2, height * 0.40), rank, fill=color, font=_font(round(rank_size * scale)), anchor="mm")
    pip = round(76 * scale)
    card.paste(color, ((width - pip) // 2, round(height * 0.63)), suit_mask(suit, pip))
    return card


def render(card_ids: list[str]) -> Image.Image:
    """The dealt cards on the table, an RGB image of 1200x1200."""
    canvas = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), TABLE_GREEN)
    size = card_size(len(card_ids))
    for card_id, slot in zip(card_ids, slots(len(card_ids))):
        card = card_image(*parse_card_id(card_id), size)
        canvas.paste(card, slot, card)
    return canvas


def render_png(card_ids: list[str]) -> bytes:
    """`render(card_ids)` as PNG bytes (lossless; the fastest zlib level, since a dataset keeps one per row)."""
    buffer = io.BytesIO()
    render(card_ids).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
