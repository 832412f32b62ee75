"""``python -m hfpose_app``: the desktop app, as the ``hfpose`` command."""

import sys

from hfpose_app.app import main

sys.exit(main())
