"""``python -m lrpose`` == the ``lrpose`` command."""

import sys

from lrpose.cli import main

sys.exit(main())
