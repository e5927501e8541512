"""`python -m stratum ...`: the same commands as the `stratum` script."""

import sys

from stratum.cli import main

sys.exit(main())
