"""``python -m fewmul.cli``: the same as the ``fewmul`` command."""

import sys

from . import main

sys.exit(main())
