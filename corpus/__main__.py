"""`python -m corpus ...`: see corpus/cli.py."""

import sys

from .cli import main

sys.exit(main())
