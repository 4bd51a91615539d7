import sys

from buildsync.edge.cli import main

sys.exit(main())
