"""Write the HTTP API's OpenAPI document, as `api.main:app` serves it, to docs/reference/.

    python docs/gen/openapi.py          # rewrite docs/reference/openapi.json
    python docs/gen/openapi.py --check  # exit 1 when the committed document is stale

The API reference page renders this file (neoteroi-mkdocs), so the page shows the routes,
parameters and answers of the code itself; tests/docs/test_generated.py runs `--check`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "reference" / "openapi.json"


def render() -> str:
    """The document as the app builds it, in a stable text form (sorted keys, one indent)."""
    from api.main import app

    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run python docs/gen/openapi.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
