"""spark-submit entry file: `spark-submit ... spark-jobs/run_stream.py` (see submit.sh)."""

import sys

from heartbeat_stream.runtime.job import main

if __name__ == "__main__":
    sys.exit(main())
