"""`python -m drillbook.lint [--root PATH] [--today YYYY-MM-DD]`."""

import sys

from drillbook.lint import main

sys.exit(main())
