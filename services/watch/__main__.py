"""``python -m services.watch``: run the watch worker (early warning)."""

import logging

from services.watch.app import build_app
from shared.settings import load_settings
from shared.worker import run_worker


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_worker(build_app(settings), settings.log_level)


if __name__ == "__main__":
    main()
