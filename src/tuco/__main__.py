"""`python -m tuco` runs the CLI."""

import sys

from tuco.cli.main import main

sys.exit(main())
