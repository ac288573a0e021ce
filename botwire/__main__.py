"""``python -m botwire``: the ``botwire`` command."""

import sys

from botwire.cli import main

sys.exit(main())
