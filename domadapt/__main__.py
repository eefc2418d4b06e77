"""``python -m domadapt`` — same as the ``domadapt`` command."""

import sys

from domadapt.cli import main

sys.exit(main())
