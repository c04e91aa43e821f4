"""``python -m mae_core`` is a deprecated alias of ``python -m mae_cli`` (the ``mae`` command)."""

import sys
import warnings

if __name__ == "__main__":
    warnings.warn("`python -m mae_core` is deprecated: use `python -m mae_cli` or `mae`",
                  DeprecationWarning, stacklevel=1)
    from mae_cli import main

    sys.exit(main())
