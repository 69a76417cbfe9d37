"""The committed OpenAPI document (docs/openapi.json): write it, or check it is current.

uv run python -m boot.openapi_doc          # rewrite docs/openapi.json
uv run python -m boot.openapi_doc --check  # exit 1 when the app and the file differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def current() -> dict[str, Any]:
    from anxin.settings import Settings
    from boot.roles import build_app

    return build_app(Settings()).openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render(current())
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run `uv run python -m boot.openapi_doc`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
