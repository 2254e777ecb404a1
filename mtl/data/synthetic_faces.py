"""Procedurally drawn grayscale faces whose attributes are visible in the pixels.

Each face is drawn from latent attributes so that a CNN can learn every task from the image:

* smile   - mouth curvature (corners up vs. flat/down);
* emotion - brows (height, slant), eye openness, an open mouth (surprise/fear), nose wrinkles
  (disgust), narrowed eyes (happy);
* gender  - face shape (wider, squarer jaw for male) and hair (long on the sides for female);
* age     - forehead lines (one per decade from 16), greying hair, a smaller face for children.

Smile is drawn conditionally on emotion (happy faces mostly smile, sad/angry rarely), so the
labels stay coherent while each task keeps its own visual cue. Everything is deterministic for
a given numpy ``Generator`` state. Coordinates are normalised to [-1, 1] so any size renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl.tasks import EMOTIONS

# P(smile | emotion), in EMOTIONS order: angry, disgust, fear, happy, sad, surprise, neutral.
_SMILE_GIVEN_EMOTION = np.array([0.3, 0.3, 0.3, 0.95, 0.2, 0.6, 0.5])
# Age groups sampled uniformly over these year ranges so every default age group is populated.
_AGE_RANGES = ((1, 15), (16, 25), (26, 35), (36, 45), (46, 60), (61, 85))

# Per emotion: brow height offset, brow slant (+: inner ends down), eye half-height,
# mouth opening (half-height, half-width; 0 = closed), nose wrinkles. Eye 0 draws closed,
# upward-arched "smiling" eyes.
_EMOTION_STYLE = {
    "angry": dict(brow_dy=0.05, slant=0.14, eye=0.04, mouth=(0.0, 0.0), wrinkle=False),
    "disgust": dict(brow_dy=0.05, slant=0.0, eye=0.025, mouth=(0.0, 0.0), wrinkle=True),
    "fear": dict(brow_dy=-0.08, slant=-0.1, eye=0.08, mouth=(0.05, 0.17), wrinkle=False),
    "happy": dict(brow_dy=-0.02, slant=0.0, eye=0.0, mouth=(0.0, 0.0), wrinkle=False),
    "sad": dict(brow_dy=0.0, slant=-0.14, eye=0.05, mouth=(0.0, 0.0), wrinkle=False),
    "surprise": dict(brow_dy=-0.13, slant=0.0, eye=0.09, mouth=(0.12, 0.08), wrinkle=False),
    "neutral": dict(brow_dy=0.0, slant=0.0, eye=0.055, mouth=(0.0, 0.0), wrinkle=False),
}


@dataclass(frozen=True)
class FaceAttributes:
    """Latent attributes of a batch of faces (arrays of length N)."""

    smile: np.ndarray  # N, int 0/1
    emotion: np.ndarray  # N, int index into EMOTIONS
    gender: np.ndarray  # N, int 0 female / 1 male
    age: np.ndarray  # N, int years


def sample_attributes(n: int, rng: np.random.Generator) -> FaceAttributes:
    """Draw ``n`` faces' attributes: emotion, gender and age group uniform, smile | emotion."""
    emotion = rng.integers(0, len(EMOTIONS), n)
    smile = (rng.random(n) < _SMILE_GIVEN_EMOTION[emotion]).astype(np.int64)
    gender = rng.integers(0, 2, n)
    group = rng.integers(0, len(_AGE_RANGES), n)
    lo = np.array([r[0] for r in _AGE_RANGES])[group]
    hi = np.array([r[1] for r in _AGE_RANGES])[group]
    age = rng.integers(lo, hi + 1)
    return FaceAttributes(smile, emotion, gender, age)


def _blend(img: np.ndarray, alpha: np.ndarray, value: float) -> None:
    """Paint ``value`` over ``img`` in place with per-pixel coverage ``alpha`` in [0, 1]."""
    img *= 1.0 - alpha
    img += alpha * value


def _coverage(dist: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased coverage of a shape given the signed distance to its edge (<0 inside)."""
    return np.clip(0.5 - dist / pixel, 0.0, 1.0)


class _Canvas:
    """A square grayscale canvas in normalised coordinates (x right, y down, both in [-1, 1])."""

    def __init__(self, size: int, background: float) -> None:
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")  # H x W each
        self.pixel = 2.0 / size
        self.img = np.full((size, size), background, dtype=np.float32)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, value: float, p: float = 2.0):
        # Superellipse "radius" minus 1, scaled to an approximate distance.
        r = (np.abs((self.x - cx) / rx) ** p + np.abs((self.y - cy) / ry) ** p) ** (1 / p)
        _blend(self.img, _coverage((r - 1) * min(rx, ry), self.pixel), value)

    def segment(self, x0: float, y0: float, x1: float, y1: float, width: float, value: float):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((self.x - x0) * dx + (self.y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
        d = np.hypot(self.x - (x0 + t * dx), self.y - (y0 + t * dy))
        _blend(self.img, _coverage(d - width / 2, self.pixel), value)

    def parabola(self, cx: float, cy: float, half_w: float, curve: float, width: float, value):
        """Mouth line ``y = cy - curve * u^2`` for ``|u| <= 1``: corners go up when curve > 0."""
        u = (self.x - cx) / half_w
        y_line = cy - curve * u * u
        d = np.abs(self.y - y_line)
        d = np.where(np.abs(u) <= 1, d, np.hypot(d, (np.abs(u) - 1) * half_w))
        _blend(self.img, _coverage(d - width / 2, self.pixel), value)


def render_face(
    smile: int, emotion: int, gender: int, age_years: int, rng: np.random.Generator, size: int = 48
) -> np.ndarray:
    """Draw one face; returns a ``size x size`` uint8 array."""
    style = _EMOTION_STYLE[EMOTIONS[emotion]]
    canvas = _Canvas(size, background=rng.uniform(0.05, 0.45))
    scale = rng.uniform(0.92, 1.04) * (0.85 if age_years < 13 else 1.0)
    cx, cy = rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05)
    skin = rng.uniform(0.6, 0.8)
    hair = float(np.clip(0.12 + (age_years - 30) / 45, 0.12, 0.85))  # greys with age
    male = gender == 1
    rx, ry = (0.66 if male else 0.54) * scale, 0.78 * scale

    if not male:  # long hair on the sides, behind the face
        canvas.ellipse(cx, cy + 0.12 * scale, rx + 0.2, ry + 0.1, hair)
    canvas.ellipse(cx, cy, rx, ry, skin, p=3.2 if male else 2.0)
    canvas.ellipse(cx, cy - ry * 0.85, rx * 0.95, ry * 0.32, hair)  # hair cap

    n_lines = int(np.clip((age_years - 6) // 10, 0, 6))  # one forehead line per decade from 16
    for i in range(n_lines):
        ly = cy - 0.36 * scale - 0.035 * i * scale
        canvas.segment(cx - 0.25 * scale, ly, cx + 0.25 * scale, ly, 0.018, skin - 0.28)

    eye_y, eye_dx, eye_h = cy - 0.1 * scale, 0.23 * scale, style["eye"] * scale
    brow_y = cy - 0.26 * scale + style["brow_dy"] * scale
    for side in (-1, 1):
        ex = cx + side * eye_dx
        if eye_h > 0:
            canvas.ellipse(ex, eye_y, 0.1 * scale, eye_h, 0.08)
        else:  # closed, arched eyes
            canvas.parabola(ex, eye_y + 0.02 * scale, 0.1 * scale, 0.06 * scale, 0.035, 0.08)
        inner, outer = ex - side * 0.1 * scale, ex + side * 0.11 * scale
        slant = style["slant"] * scale
        canvas.segment(inner, brow_y + slant / 2, outer, brow_y - slant / 2, 0.045, hair * 0.6)

    if style["wrinkle"]:
        for k in range(3):
            wy = eye_y + 0.02 + 0.035 * k
            canvas.segment(cx - 0.06, wy, cx + 0.06, wy, 0.016, skin - 0.3)

    mouth_y = cy + 0.42 * scale
    open_h, open_w = style["mouth"]
    curve = rng.uniform(0.07, 0.12) if smile else rng.uniform(-0.08, 0.0)
    if open_h > 0:
        canvas.ellipse(cx, mouth_y, open_w * scale, open_h * scale, 0.05)
    canvas.parabola(cx, mouth_y, 0.2 * scale, curve * scale, 0.04, 0.15)

    img = canvas.img * rng.uniform(0.8, 1.15) + rng.normal(0.0, 0.035, canvas.img.shape)
    return (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)


def render_faces(attrs: FaceAttributes, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Draw every face in ``attrs``; returns ``N x size x size`` uint8."""
    out = np.empty((len(attrs.smile), size, size), dtype=np.uint8)
    for i in range(len(out)):
        out[i] = render_face(
            int(attrs.smile[i]),
            int(attrs.emotion[i]),
            int(attrs.gender[i]),
            int(attrs.age[i]),
            rng,
            size,
        )
    return out
