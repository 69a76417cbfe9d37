"""The face engine's own errors: a refused image or photo, with a stable code and zh/en text.

Each is also a kind of `anxin.errors.DomainError` (too large, unsupported, invalid), so an
adapter translates it like any other domain error (api/ to 413/415/422, the bridge to a
refusal) while the engine knows nothing of HTTP.
"""

from __future__ import annotations

from anxin.errors import DomainError, Invalid, TooLarge, Unsupported


class FaceEngineError(DomainError):
    """Base of every error the face engine raises for a person to read."""


class ImageTooLarge(FaceEngineError, TooLarge):
    """The file is over the byte cap."""


class ImageUnsupported(FaceEngineError, Unsupported):
    """Not a JPEG or a PNG (by its magic bytes)."""


class ImageInvalid(FaceEngineError, Invalid):
    """Empty, corrupt, or dimensions beyond the decoder's cap."""


class FaceRejected(FaceEngineError, Invalid):
    """A readable photo the quality gate refuses (no face, two faces, too small, blurred...)."""
