"""pytest setup: import the package from this checkout and the helpers beside the tests.

The library is found as the package finds it (MULTIHEAD_LIBRARY, multihead/lib/, or the
repository's build/lib/ from `make lib`).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
