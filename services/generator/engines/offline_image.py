"""The built-in image engine: a picture drawn with Pillow from the part's words, deterministic, not an AI model.

The palette and the scene elements follow the part (night, sea, forest, snow,
city, ...), the characters named in the scene appear in the colours of their
descriptions, a pencil-and-ink style gets hatching, and a caption says which part
it is and, plainly, that the offline engine drew it.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import random
from collections.abc import Sequence

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter, ImageFont

from services.generator.engines.base import EngineInfo, Image, ImageRequest
from services.generator.story_format import Character

ENGINE_NAME = "offline"
MODEL_NAME = "dreamforge-offline-sketch-1"
WIDTH, HEIGHT = 512, 384
CAPTION_HEIGHT = 52
NOTICE = "Drawn by the DreamForge offline engine - not an AI model"

RGB = tuple[int, int, int]

# Theme -> (words that call it up, sky top, sky bottom, ground)
_THEMES: dict[str, tuple[tuple[str, ...], RGB, RGB, RGB]] = {
    "night": (("night", "star", "moon", "dark", "midnight", "evening"), (14, 22, 58), (58, 64, 120), (28, 44, 40)),
    "snow": (("snow", "winter", "ice", "frost", "cold"), (170, 200, 230), (235, 242, 250), (240, 244, 250)),
    "sea": (
        ("sea", "harbour", "harbor", "ocean", "river", "island", "boat", "wave", "lake"),
        (90, 160, 220),
        (190, 225, 245),
        (40, 100, 160),
    ),
    "forest": (
        ("forest", "tree", "wood", "meadow", "garden", "leaf", "birch"),
        (120, 190, 220),
        (215, 235, 210),
        (60, 120, 60),
    ),
    "desert": (("desert", "sand", "oasis", "dune", "sun"), (240, 190, 110), (250, 230, 170), (215, 170, 100)),
    "storm": (("storm", "rain", "thunder", "giant", "fire", "dragon"), (60, 64, 80), (120, 120, 140), (70, 80, 70)),
    "city": (
        ("city", "town", "tower", "village", "castle", "home", "bridge"),
        (150, 180, 230),
        (240, 220, 200),
        (120, 110, 100),
    ),
    "mountain": (
        ("mountain", "hill", "cliff", "cave", "mine", "peak"),
        (130, 170, 225),
        (225, 230, 240),
        (110, 100, 90),
    ),
}
_COLOURS: dict[str, RGB] = {
    "red": (200, 50, 50),
    "blue": (50, 90, 200),
    "green": (60, 150, 70),
    "yellow": (235, 200, 40),
    "orange": (235, 130, 40),
    "grey": (130, 130, 135),
    "gray": (130, 130, 135),
    "white": (240, 240, 240),
    "brown": (130, 85, 50),
    "purple": (130, 60, 160),
    "black": (30, 30, 30),
    "pink": (235, 140, 180),
    "golden": (220, 170, 40),
    "silver": (190, 195, 205),
}
_SKETCH_WORDS = ("pencil", "ink", "sketch", "charcoal", "graphite", "line art")
_SOFT_WORDS = ("watercolor", "watercolour", "pastel", "dream")


def _rng_for(request: ImageRequest) -> random.Random:
    material = f"{request.prompt}\x00{request.part_index}\x00{request.style}\x00{request.seed}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


def _themes_of(words: str) -> list[str]:
    lowered = words.lower()
    return [name for name, (cues, *_rest) in _THEMES.items() if any(cue in lowered for cue in cues)]


def _shift(colour: RGB, rng: random.Random, amount: float = 0.06) -> RGB:
    h, light, s = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    h = (h + rng.uniform(-amount, amount)) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, light, s)
    return (int(r * 255), int(g * 255), int(b * 255))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))


def _darker(colour: RGB, factor: float = 0.6) -> RGB:
    return (int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _palette(themes: Sequence[str], rng: random.Random) -> tuple[RGB, RGB, RGB]:
    if themes:
        _cues, top, bottom, ground = _THEMES[themes[0]]
        return _shift(top, rng), _shift(bottom, rng), _shift(ground, rng)
    hue = rng.random()
    return _hls(hue, 0.55, 0.55), _hls(hue, 0.85, 0.4), _hls((hue + 0.3) % 1, 0.35, 0.4)


def _hls(hue: float, lightness: float, saturation: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return (int(r * 255), int(g * 255), int(b * 255))


def _draw_sky(draw: ImageDraw.ImageDraw, top: RGB, bottom: RGB, height: int) -> None:
    for y in range(height):
        draw.line([(0, y), (WIDTH, y)], fill=_mix(top, bottom, y / max(1, height - 1)))


def _hill(draw: ImageDraw.ImageDraw, rng: random.Random, base: int, amplitude: int, colour: RGB) -> list[int]:
    phase, freq = rng.uniform(0, math.tau), rng.uniform(1.0, 2.5)
    heights = [
        int(base - amplitude * (0.5 + 0.5 * math.sin(phase + freq * math.tau * x / WIDTH))) for x in range(WIDTH + 1)
    ]
    draw.polygon([(0, HEIGHT), *[(x, heights[x]) for x in range(0, WIDTH + 1, 8)], (WIDTH, HEIGHT)], fill=colour)
    return heights


def _tree(draw: ImageDraw.ImageDraw, x: int, ground: int, size: int, leaf: RGB) -> None:
    draw.rectangle([x - size // 10, ground - size // 2, x + size // 10, ground], fill=(100, 70, 40))
    draw.ellipse(
        [x - size // 2, ground - size * 3 // 2, x + size // 2, ground - size // 3], fill=leaf, outline=_darker(leaf)
    )


def _house(draw: ImageDraw.ImageDraw, x: int, ground: int, size: int, wall: RGB, rng: random.Random) -> None:
    tall = size * rng.choice((1, 1, 2))
    draw.rectangle([x - size // 2, ground - tall, x + size // 2, ground], fill=wall, outline=_darker(wall))
    draw.polygon(
        [(x - size // 2 - 4, ground - tall), (x, ground - tall - size // 2), (x + size // 2 + 4, ground - tall)],
        fill=(150, 60, 50),
    )
    draw.rectangle([x - size // 8, ground - size // 3, x + size // 8, ground], fill=(90, 60, 40))
    draw.rectangle(
        [x - size // 3, ground - tall + size // 5, x - size // 8, ground - tall + size // 2], fill=(250, 225, 120)
    )


def _mountain(draw: ImageDraw.ImageDraw, x: int, base: int, size: int, colour: RGB, snowy: bool) -> None:
    peak = (x, base - size)
    draw.polygon([(x - size, base), peak, (x + size, base)], fill=colour, outline=_darker(colour))
    if snowy:
        draw.polygon(
            [(x - size // 4, base - size * 3 // 4), peak, (x + size // 4, base - size * 3 // 4)], fill=(250, 250, 252)
        )


def _figure(draw: ImageDraw.ImageDraw, x: int, ground: int, size: int, colour: RGB, label: str, font: object) -> None:
    draw.ellipse(
        [x - size // 3, ground - size, x + size // 3, ground], fill=colour, outline=_darker(colour, 0.4), width=2
    )
    draw.ellipse(
        [x - size // 4, ground - size - size // 2, x + size // 4, ground - size],
        fill=_mix(colour, (255, 230, 200), 0.5),
        outline=_darker(colour, 0.4),
        width=2,
    )
    eye = max(2, size // 14)
    for dx in (-size // 10, size // 10):
        draw.ellipse(
            [x + dx - eye, ground - size - size // 4 - eye, x + dx + eye, ground - size - size // 4 + eye],
            fill=(20, 20, 20),
        )
    draw.text((x, ground + 4), label, fill=(20, 20, 20), font=font, anchor="ma")  # type: ignore[arg-type]


def _colour_of(character: Character, rng: random.Random) -> RGB:
    # The first colour word of the description is the one that dominates ("a grey mouse with a red scarf").
    lowered = character.description.lower()
    found = [(lowered.find(word), colour) for word, colour in _COLOURS.items() if word in lowered]
    if found:
        return min(found)[1]
    return _COLOURS[rng.choice(sorted(_COLOURS))]


def draw_picture(request: ImageRequest) -> bytes:
    """The PNG for one part: same request -> same bytes."""
    rng = _rng_for(request)
    words = f"{request.scene} {request.part_title}"
    themes = _themes_of(words)
    sky_top, sky_bottom, ground_colour = _palette(themes, rng)
    canvas = PILImage.new("RGB", (WIDTH, HEIGHT), sky_bottom)
    draw = ImageDraw.Draw(canvas)
    scene_bottom = HEIGHT - CAPTION_HEIGHT
    _draw_sky(draw, sky_top, sky_bottom, scene_bottom)

    night = "night" in themes
    if night:
        for _ in range(40):
            sx, sy = rng.randrange(WIDTH), rng.randrange(scene_bottom // 2)
            draw.point([(sx, sy), (sx + 1, sy)], fill=(255, 255, 230))
        mx, my = rng.randrange(60, WIDTH - 60), rng.randrange(30, 90)
        draw.ellipse([mx - 22, my - 22, mx + 22, my + 22], fill=(245, 240, 210))
        draw.ellipse([mx - 12, my - 26, mx + 28, my + 18], fill=sky_top)
    elif "storm" not in themes:
        sx, sy = rng.randrange(60, WIDTH - 60), rng.randrange(30, 100)
        draw.ellipse([sx - 28, sy - 28, sx + 28, sy + 28], fill=(255, 220, 90))

    if "mountain" in themes or "snow" in themes:
        for _ in range(3):
            _mountain(
                draw,
                rng.randrange(0, WIDTH),
                scene_bottom - 80,
                rng.randrange(90, 160),
                _mix(ground_colour, (120, 120, 140), 0.5),
                snowy="snow" in themes or rng.random() < 0.5,
            )
    far = _hill(draw, rng, scene_bottom - 90, 40, _mix(ground_colour, sky_bottom, 0.45))
    near = _hill(draw, rng, scene_bottom - 40, 30, ground_colour)

    if "sea" in themes:
        water = (40, 110, 180) if not night else (20, 40, 90)
        draw.rectangle([0, scene_bottom - 70, WIDTH, scene_bottom], fill=water)
        for row in range(scene_bottom - 64, scene_bottom, 12):
            offset = rng.randrange(0, 24)
            for x in range(-24 + offset, WIDTH, 24):
                draw.arc([x, row, x + 24, row + 10], 200, 340, fill=(220, 235, 250), width=2)
    if "forest" in themes or not themes:
        for _ in range(rng.randrange(4, 9)):
            x = rng.randrange(0, WIDTH)
            _tree(draw, x, far[x] + 6, rng.randrange(26, 44), _shift((50, 130, 60), rng, 0.04))
    if "city" in themes:
        for _ in range(rng.randrange(3, 6)):
            x = rng.randrange(20, WIDTH - 20)
            _house(draw, x, far[x] + 10, rng.randrange(28, 44), _shift((220, 200, 170), rng, 0.05), rng)
    if "desert" in themes:
        for _ in range(rng.randrange(2, 4)):
            x = rng.randrange(20, WIDTH - 20)
            draw.rectangle([x - 4, near[x] - 40, x + 4, near[x]], fill=(120, 90, 50))
            for angle in range(0, 360, 60):
                ex, ey = (
                    x + int(24 * math.cos(math.radians(angle))),
                    near[x] - 40 + int(12 * math.sin(math.radians(angle))),
                )
                draw.line([(x, near[x] - 40), (ex, ey)], fill=(60, 140, 60), width=4)
    if "storm" in themes:
        for _ in range(120):
            rx, ry = rng.randrange(WIDTH), rng.randrange(scene_bottom)
            draw.line([(rx, ry), (rx - 4, ry + 12)], fill=(190, 200, 220), width=1)

    font_small = _font(13)
    present = [c for c in request.characters if c.name.split()[0].lower() in request.scene.lower()] or list(
        request.characters[:1]
    )
    slots = len(present)
    for number, character in enumerate(present[:4]):
        x = int(WIDTH * (number + 1) / (slots + 1)) + rng.randrange(-20, 20)
        x = min(max(x, 40), WIDTH - 40)
        _figure(
            draw,
            x,
            min(near[x] + 10, scene_bottom - 24),
            46,
            _colour_of(character, rng),
            character.name.split()[0],
            font_small,
        )

    style = request.style.lower()
    if any(word in style for word in _SKETCH_WORDS):
        grey = canvas.convert("L").convert("RGB")
        canvas = PILImage.blend(canvas, grey, 0.55)
        draw = ImageDraw.Draw(canvas)
        for x in range(-scene_bottom, WIDTH, 9):
            draw.line([(x, scene_bottom), (x + scene_bottom, 0)], fill=(60, 60, 60), width=1)
        canvas = PILImage.blend(canvas, canvas.filter(ImageFilter.CONTOUR), 0.25)
        draw = ImageDraw.Draw(canvas)
    elif any(word in style for word in _SOFT_WORDS):
        canvas = canvas.filter(ImageFilter.GaussianBlur(1.5))
        draw = ImageDraw.Draw(canvas)

    draw.rectangle([0, scene_bottom, WIDTH, HEIGHT], fill=(250, 247, 238))
    draw.line([(0, scene_bottom), (WIDTH, scene_bottom)], fill=(60, 60, 60), width=2)
    caption = f"Part {request.part_index + 1} of {request.parts}: {request.part_title}"
    font_caption = _font(16)
    while len(caption) > 8 and draw.textlength(caption, font=font_caption) > WIDTH - 16:
        caption = caption[:-2].rstrip() + "…"
    draw.text((8, scene_bottom + 6), caption, fill=(20, 20, 20), font=font_caption)
    draw.text((8, scene_bottom + 30), NOTICE, fill=(110, 40, 40), font=_font(12))

    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


class OfflineImageEngine:
    """Draws pictures itself; the manifest and the caption say it is not an AI model."""

    def __init__(self) -> None:
        self.info = EngineInfo(
            engine=ENGINE_NAME, model=MODEL_NAME, offline=True, parameters={"size": f"{WIDTH}x{HEIGHT}"}
        )

    async def draw(self, request: ImageRequest) -> Image:
        # Drawing takes a few milliseconds; not worth a thread hop for the event loop.
        return Image(data=draw_picture(request), content_type="image/png")

    async def aclose(self) -> None:
        return None
