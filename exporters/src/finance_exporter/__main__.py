"""`python -m finance_exporter` runs the command line."""

import sys

from finance_exporter.cli import main

sys.exit(main())
