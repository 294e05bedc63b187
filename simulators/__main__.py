"""`python -m simulators`: the `hazmon simulate` command without the hazmon CLI."""

import sys

from simulators.cli import main

sys.exit(main())
