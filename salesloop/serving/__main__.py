"""``python -m salesloop.serving``: see :mod:`salesloop.serving.server`."""

import sys

from salesloop.serving.server import main

sys.exit(main())
