"""``python -m envdoctor.cli``: the same as ``envdoctor``."""

import sys

from envdoctor.cli import main

sys.exit(main())
