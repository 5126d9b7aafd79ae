import sys

from xmark_core.cli import main

sys.exit(main())
