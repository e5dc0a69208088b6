"""``python -m commtest`` is the ``commtest`` command."""
from __future__ import annotations

from commtest.cli import main

if __name__ == "__main__":
    main()
