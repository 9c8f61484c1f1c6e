"""``python -m posebridge.backend``: the same command as ``posebridge-backend``."""

import sys

from .cli import main

sys.exit(main())
