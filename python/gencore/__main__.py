import sys

from gencore.cli import main

sys.exit(main())
