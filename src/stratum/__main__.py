"""`python -m stratum`: the same as the `stratum` command."""

import sys

from stratum.cli import main

sys.exit(main())
