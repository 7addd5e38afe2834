"""`python -m minibert.cli ...`: the `minibert` command without its console script."""

import sys

from .main import main

sys.exit(main())
