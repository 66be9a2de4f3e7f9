"""``python -m envdoctor.cli``: the same as ``envdoctor``.

Touches: what the command it runs touches.
"""

import sys

from envdoctor.cli import main

sys.exit(main())
