"""`heartbeat-notifier`: run the notifier (supervised by `make up`, a service in compose)."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import load
from .service import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="heartbeat-notifier", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = load()
    if not config.notifier_token:
        logging.warning("HEARTBEAT_NOTIFIER_TOKEN is unset: the ack endpoint refuses everyone")
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
