"""``python -m imgpipe.cli``: the ``imgpipe`` command, for environments without its script."""

import sys

from imgpipe.cli import main

sys.exit(main())
