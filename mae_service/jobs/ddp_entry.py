"""``python -m mae_service.jobs.ddp_entry launch N CONFIG | rank CONFIG``: the processes
:mod:`mae_service.jobs.ddp` starts (a module of its own, so runpy never re-imports ddp)."""

import sys

from mae_service.jobs.ddp import entry

if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
