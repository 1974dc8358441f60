import sys

from collm.cli import main

sys.exit(main())
