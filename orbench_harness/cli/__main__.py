"""``python -m orbench_harness.cli`` runs the ``harness`` command."""

import sys

from orbench_harness.cli import main

sys.exit(main())
