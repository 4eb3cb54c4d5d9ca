"""One logging format for every process: a timestamped line per notable event."""

import logging


def setup_logging(level: str, service: str) -> None:
    """Configure the root logger once per process."""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )
    # aiokafka logs every connection hiccup at ERROR; ours say what it means for the service.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
