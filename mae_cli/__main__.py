"""``python -m mae_cli ...`` is the ``mae`` command (what ``torchrun`` launches)."""

import sys

from mae_cli import main

if __name__ == "__main__":
    sys.exit(main())
