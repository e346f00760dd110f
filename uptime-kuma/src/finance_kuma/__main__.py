"""python -m finance_kuma: the same as the finance-kuma-setup command."""

from __future__ import annotations

import sys

from finance_kuma.cli import main

if __name__ == "__main__":
    sys.exit(main())
