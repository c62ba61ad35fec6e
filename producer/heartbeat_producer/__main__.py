"""`python -m heartbeat_producer`: the same as the `heartbeat-producer` command."""

import sys

from .cli import main

sys.exit(main())
