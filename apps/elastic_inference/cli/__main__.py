"""``python -m elastic_inference.cli``: the ``ei`` command without its console script."""

import sys

from . import main

sys.exit(main())
