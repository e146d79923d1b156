"""``python -m pai_client.cli``: the ``pai`` command."""

import sys

from . import main

sys.exit(main())
