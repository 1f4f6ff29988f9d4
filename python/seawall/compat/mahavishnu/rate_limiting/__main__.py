"""``python -m seawall.compat.mahavishnu.rate_limiting``: the seed's CLI commands (A15), as the
``seawall-mahavishnu`` console script runs them (``rate_limiting_cli``)."""

from __future__ import annotations

import sys

from seawall.compat.mahavishnu.rate_limiting_cli import main

if __name__ == "__main__":
    sys.exit(main())
