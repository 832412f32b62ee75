"""``python -m hfpose.app``: the desktop app, as the ``hfpose`` command."""

import sys

from hfpose.app.app import main

sys.exit(main())
