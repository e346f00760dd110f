"""python -m monitoring generate: write the files generated from monitoring/inventory.yml."""

from __future__ import annotations

import sys

from monitoring import generate, inventory


def main(argv: list[str]) -> int:
    """Dispatch: `generate` is the only command."""
    if argv != ["generate"]:
        print("usage: python -m monitoring generate", file=sys.stderr)
        return 2
    written = generate.write(generate.ROOT, generate.render(inventory.load()))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
