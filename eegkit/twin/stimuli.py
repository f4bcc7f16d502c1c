"""Synthetic stimuli of the twin: image specs, their captions and their pictures.

Each image is a category motif drawn with PIL, with visible attributes (count, size,
colour, position, background) that its caption states, e.g. "two small red
aeroplanes on the left above a green field". Equal specs give equal captions, so
distinct specs give distinct captions: instance-level retrieval is possible, and
class-aware retrieval (any caption of the category) differs from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from eegkit.data.channels import CATEGORIES

COUNTS = ("one", "two", "three")
SIZES = ("small", "large")
COLOURS = {
    "red": (200, 30, 30),
    "green": (40, 150, 40),
    "blue": (40, 70, 200),
    "yellow": (230, 200, 30),
    "purple": (130, 50, 160),
    "orange": (240, 130, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
POSITIONS = ("on the left", "in the middle", "on the right")
BACKGROUNDS = {
    "above a green field": ((135, 190, 235), (70, 150, 60)),
    "under a blue sky": ((90, 150, 230), (200, 200, 190)),
    "by the water": ((180, 210, 235), (40, 90, 170)),
    "in a beige room": ((225, 210, 180), (150, 110, 80)),
    "in the snow": ((210, 220, 230), (250, 250, 250)),
    "at night": ((15, 20, 50), (40, 40, 60)),
}
#: Attribute names in caption order, and their possible values.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "count": COUNTS,
    "size": SIZES,
    "colour": tuple(COLOURS),
    "position": POSITIONS,
    "background": tuple(BACKGROUNDS),
}
_PLURALS = {"bus": "buses", "sheep": "sheep", "person": "people",
            "diningtable": "dining tables", "tvmonitor": "tv monitors"}
_SINGULARS = {"diningtable": "dining table", "tvmonitor": "tv monitor"}


@dataclass(frozen=True)
class ImageSpec:
    """What one synthetic image shows."""

    category: str
    count: str
    size: str
    colour: str
    position: str
    background: str

    @property
    def caption(self) -> str:
        noun = _SINGULARS.get(self.category, self.category)
        if self.count != "one":
            noun = _PLURALS.get(self.category, noun + "s")
        article = "a" if self.count == "one" else self.count
        return f"{article} {self.size} {self.colour} {noun} {self.position} {self.background}"

    def attribute_indices(self) -> dict[str, int]:
        """Index of each attribute value in :data:`ATTRIBUTES`."""
        return {name: ATTRIBUTES[name].index(getattr(self, name)) for name in ATTRIBUTES}


def sample_specs(
    rng: np.random.Generator,
    per_category: int,
    exclude: set[ImageSpec] | frozenset[ImageSpec] = frozenset(),
) -> list[ImageSpec]:
    """Draw distinct image specs, ``per_category`` of each category, none in ``exclude``.

    Returns
    -------
    specs : list of ImageSpec, category-major order
    """
    n_combos = math.prod(len(v) for v in ATTRIBUTES.values())
    if per_category > n_combos // 2:
        raise ValueError(f"per_category={per_category} is too many; at most {n_combos // 2}")
    specs: list[ImageSpec] = []
    for category in CATEGORIES:
        chosen: set[ImageSpec] = set()
        while len(chosen) < per_category:
            values = {k: v[rng.integers(len(v))] for k, v in ATTRIBUTES.items()}
            spec = ImageSpec(category=category, **values)
            if spec not in exclude and spec not in chosen:
                chosen.add(spec)
                specs.append(spec)
    return specs


def _motif(draw: ImageDraw.ImageDraw, category: str, cx: float, cy: float,
           s: float, colour: tuple[int, int, int]) -> None:
    """Draw one category motif centred at (cx, cy) with half-size s (pixels)."""
    dark = tuple(max(0, c - 90) for c in colour)
    outline = (60, 60, 60) if sum(colour) < 200 else dark

    def box(x0, y0, x1, y1):
        return [cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s]

    def poly(points):
        return [(cx + x * s, cy + y * s) for x, y in points]

    def wheel(x, y, r):
        draw.ellipse(box(x - r, y - r, x + r, y + r), outline=dark, width=max(1, int(s / 8)))

    w = max(1, int(s / 6))
    if category == "aeroplane":
        draw.polygon(poly([(-1, 0), (-0.6, -0.15), (0.9, -0.1), (1, 0), (0.9, 0.1), (-0.6, 0.15)]), fill=colour)
        draw.polygon(poly([(-0.1, 0), (0.3, -0.9), (0.45, -0.9), (0.35, 0)]), fill=dark)
        draw.polygon(poly([(-0.1, 0), (0.3, 0.9), (0.45, 0.9), (0.35, 0)]), fill=dark)
        draw.polygon(poly([(-0.95, 0), (-0.85, -0.45), (-0.7, -0.45), (-0.7, 0)]), fill=dark)
    elif category == "bicycle":
        wheel(-0.55, 0.3, 0.4)
        wheel(0.55, 0.3, 0.4)
        draw.line(poly([(-0.55, 0.3), (-0.1, -0.3), (0.55, 0.3), (0.0, 0.3), (-0.55, 0.3)]), fill=colour, width=w)
        draw.line(poly([(-0.1, -0.3), (0.3, -0.3), (0.55, 0.3)]), fill=colour, width=w)
    elif category == "bird":
        draw.ellipse(box(-0.7, -0.3, 0.4, 0.4), fill=colour)
        draw.ellipse(box(0.2, -0.6, 0.7, -0.1), fill=colour)
        draw.polygon(poly([(0.7, -0.4), (1, -0.3), (0.7, -0.25)]), fill=(240, 170, 0))
        draw.polygon(poly([(-0.4, -0.1), (0.1, -0.9), (0.2, -0.1)]), fill=dark)
        draw.polygon(poly([(-0.7, 0.0), (-1, -0.3), (-1, 0.3)]), fill=dark)
    elif category == "boat":
        draw.polygon(poly([(-1, 0.3), (1, 0.3), (0.7, 0.7), (-0.7, 0.7)]), fill=colour)
        draw.line(poly([(0, 0.3), (0, -0.9)]), fill=dark, width=w)
        draw.polygon(poly([(0.05, -0.85), (0.7, 0.2), (0.05, 0.2)]), fill=(240, 240, 230))
    elif category == "bottle":
        draw.rectangle(box(-0.35, -0.3, 0.35, 0.95), fill=colour, outline=outline)
        draw.polygon(poly([(-0.35, -0.3), (-0.12, -0.6), (0.12, -0.6), (0.35, -0.3)]), fill=colour)
        draw.rectangle(box(-0.12, -0.95, 0.12, -0.6), fill=colour, outline=outline)
        draw.rectangle(box(-0.35, 0.1, 0.35, 0.45), fill=(240, 240, 230))
    elif category == "bus":
        draw.rectangle(box(-1, -0.55, 1, 0.45), fill=colour, outline=outline)
        for i in range(5):
            x = -0.9 + i * 0.38
            draw.rectangle(box(x, -0.4, x + 0.28, -0.05), fill=(200, 230, 250))
        wheel(-0.6, 0.5, 0.2)
        wheel(0.6, 0.5, 0.2)
    elif category == "car":
        draw.rectangle(box(-1, -0.1, 1, 0.4), fill=colour, outline=outline)
        draw.polygon(poly([(-0.55, -0.1), (-0.35, -0.55), (0.35, -0.55), (0.6, -0.1)]), fill=colour)
        draw.polygon(poly([(-0.4, -0.12), (-0.27, -0.45), (0.25, -0.45), (0.45, -0.12)]), fill=(200, 230, 250))
        wheel(-0.55, 0.45, 0.25)
        wheel(0.55, 0.45, 0.25)
    elif category == "cat":
        draw.ellipse(box(-0.6, -0.6, 0.6, 0.6), fill=colour, outline=outline)
        draw.polygon(poly([(-0.6, -0.3), (-0.55, -1), (-0.1, -0.55)]), fill=colour)
        draw.polygon(poly([(0.6, -0.3), (0.55, -1), (0.1, -0.55)]), fill=colour)
        for x in (-0.25, 0.25):
            draw.ellipse(box(x - 0.1, -0.2, x + 0.1, 0.0), fill=(60, 180, 60))
        draw.line(poly([(-0.9, 0.15), (-0.2, 0.2)]), fill=dark, width=1)
        draw.line(poly([(0.9, 0.15), (0.2, 0.2)]), fill=dark, width=1)
    elif category == "chair":
        draw.rectangle(box(-0.5, -0.9, -0.35, 0.9), fill=colour)
        draw.rectangle(box(-0.5, 0.0, 0.5, 0.15), fill=colour)
        draw.rectangle(box(0.35, 0.0, 0.5, 0.9), fill=colour)
        draw.rectangle(box(-0.5, -0.9, 0.1, -0.75), fill=dark)
    elif category == "cow":
        draw.rectangle(box(-0.8, -0.3, 0.6, 0.3), fill=colour, outline=outline)
        for x in (-0.7, -0.45, 0.3, 0.5):
            draw.rectangle(box(x, 0.3, x + 0.1, 0.8), fill=colour)
        draw.ellipse(box(0.5, -0.6, 1.0, -0.1), fill=colour, outline=outline)
        for x, y in ((-0.5, -0.1), (0.0, 0.05), (-0.2, -0.2)):
            draw.ellipse(box(x, y, x + 0.22, y + 0.18), fill=(30, 30, 30) if sum(colour) > 300 else (240, 240, 240))
    elif category == "diningtable":
        draw.rectangle(box(-1, -0.3, 1, -0.1), fill=colour, outline=outline)
        for x in (-0.85, 0.7):
            draw.rectangle(box(x, -0.1, x + 0.15, 0.8), fill=dark)
        for x in (-0.5, 0.1):
            draw.ellipse(box(x, -0.5, x + 0.35, -0.3), fill=(240, 240, 240))
    elif category == "dog":
        draw.ellipse(box(-0.8, -0.3, 0.5, 0.3), fill=colour, outline=outline)
        for x in (-0.6, -0.35, 0.15, 0.35):
            draw.rectangle(box(x, 0.1, x + 0.12, 0.75), fill=colour)
        draw.ellipse(box(0.3, -0.75, 0.9, -0.2), fill=colour, outline=outline)
        draw.polygon(poly([(0.35, -0.65), (0.2, -0.2), (0.45, -0.35)]), fill=dark)
        draw.line(poly([(-0.8, -0.1), (-1, -0.6)]), fill=colour, width=w)
    elif category == "flower":
        draw.line(poly([(0, 0.1), (0, 1)]), fill=(40, 130, 40), width=w)
        for k in range(6):
            a = k * math.pi / 3
            x, y = 0.45 * math.cos(a), -0.3 + 0.45 * math.sin(a)
            draw.ellipse(box(x - 0.3, y - 0.3, x + 0.3, y + 0.3), fill=colour, outline=outline)
        draw.ellipse(box(-0.2, -0.5, 0.2, -0.1), fill=(240, 200, 0))
    elif category == "horse":
        draw.ellipse(box(-0.8, -0.3, 0.5, 0.25), fill=colour, outline=outline)
        for x in (-0.65, -0.45, 0.2, 0.38):
            draw.rectangle(box(x, 0.1, x + 0.1, 0.9), fill=colour)
        draw.polygon(poly([(0.3, -0.2), (0.55, -0.9), (0.75, -0.85), (0.55, -0.1)]), fill=colour)
        draw.polygon(poly([(0.55, -0.9), (1.0, -0.65), (0.95, -0.5), (0.65, -0.65)]), fill=colour)
        draw.line(poly([(-0.8, -0.1), (-1, 0.4)]), fill=dark, width=w)
    elif category == "motorbike":
        wheel(-0.6, 0.4, 0.35)
        wheel(0.6, 0.4, 0.35)
        draw.polygon(poly([(-0.6, 0.4), (-0.3, -0.2), (0.4, -0.2), (0.6, 0.4), (0.1, 0.3)]), fill=colour)
        draw.line(poly([(0.4, -0.2), (0.55, -0.55), (0.8, -0.55)]), fill=dark, width=w)
        draw.rectangle(box(-0.45, -0.35, 0.05, -0.2), fill=dark)
    elif category == "person":
        draw.ellipse(box(-0.22, -1, 0.22, -0.56), fill=(240, 200, 170))
        draw.rectangle(box(-0.3, -0.55, 0.3, 0.25), fill=colour)
        draw.line(poly([(-0.3, -0.45), (-0.65, 0.1)]), fill=colour, width=w)
        draw.line(poly([(0.3, -0.45), (0.65, 0.1)]), fill=colour, width=w)
        draw.line(poly([(-0.15, 0.25), (-0.25, 1)]), fill=dark, width=w)
        draw.line(poly([(0.15, 0.25), (0.25, 1)]), fill=dark, width=w)
    elif category == "sheep":
        for x, y in ((-0.5, -0.1), (-0.15, -0.25), (0.2, -0.1), (-0.3, 0.15), (0.1, 0.15)):
            draw.ellipse(box(x - 0.35, y - 0.3, x + 0.35, y + 0.3), fill=colour, outline=outline)
        draw.ellipse(box(0.45, -0.45, 0.85, -0.05), fill=(40, 40, 40))
        for x in (-0.5, -0.2, 0.1, 0.35):
            draw.rectangle(box(x, 0.35, x + 0.08, 0.8), fill=(40, 40, 40))
    elif category == "sofa":
        draw.rectangle(box(-0.9, -0.5, 0.9, 0.0), fill=dark)
        draw.rectangle(box(-1, -0.1, 1, 0.45), fill=colour, outline=outline)
        draw.rectangle(box(-1, -0.3, -0.8, 0.45), fill=colour, outline=outline)
        draw.rectangle(box(0.8, -0.3, 1, 0.45), fill=colour, outline=outline)
        draw.line(poly([(0, -0.1), (0, 0.45)]), fill=outline, width=1)
    elif category == "train":
        for x in (-1, -0.3, 0.4):
            draw.rectangle(box(x, -0.45, x + 0.6, 0.3), fill=colour, outline=outline)
            draw.rectangle(box(x + 0.1, -0.35, x + 0.5, -0.1), fill=(200, 230, 250))
            wheel(x + 0.15, 0.38, 0.1)
            wheel(x + 0.45, 0.38, 0.1)
        draw.line(poly([(-1, 0.5), (1, 0.5)]), fill=(90, 90, 90), width=w)
    elif category == "tvmonitor":
        draw.rectangle(box(-0.9, -0.75, 0.9, 0.45), fill=colour, outline=outline)
        draw.rectangle(box(-0.75, -0.6, 0.75, 0.3), fill=(30, 40, 60))
        draw.rectangle(box(-0.1, 0.45, 0.1, 0.75), fill=dark)
        draw.rectangle(box(-0.5, 0.75, 0.5, 0.85), fill=dark)
    else:
        raise ValueError(f"no motif for category {category!r}; categories are {CATEGORIES}")


def draw_image(spec: ImageSpec, size: int = 224) -> Image.Image:
    """Render an image spec as an RGB picture of ``size`` x ``size`` pixels."""
    sky, ground = BACKGROUNDS[spec.background]
    image = Image.new("RGB", (size, size), sky)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, int(size * 0.65), size, size], fill=ground)
    n = COUNTS.index(spec.count) + 1
    half = size * (0.1 if spec.size == "small" else 0.19) / (1 + 0.25 * (n - 1))
    centre_x = size * (0.25, 0.5, 0.75)[POSITIONS.index(spec.position)]
    spread = 2.3 * half
    for k in range(n):
        cx = centre_x + (k - (n - 1) / 2) * spread * 0.8
        cx = min(max(cx, 1.05 * half), size - 1.05 * half)  # keep motifs in frame
        cy = size * 0.55 + (k % 2) * half * 0.6 - (n > 1) * half * 0.3
        _motif(draw, spec.category, cx, cy, half, COLOURS[spec.colour])
    return image
