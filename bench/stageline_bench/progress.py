"""Progress lines on stderr while a run goes (stdout is kept for the final table)."""

import logging
import sys
import time

log = logging.getLogger("stageline_bench")
_STARTED = time.time()


def setup() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # The devstack helpers log starts and stops; keep them, at the same format.
    devstack = logging.getLogger("stageline_devstack")
    devstack.addHandler(handler)
    devstack.setLevel(logging.INFO)
    devstack.propagate = False


class _Elapsed(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        elapsed = record.created - _STARTED
        line = f"[bench {elapsed:7.1f}s] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line
