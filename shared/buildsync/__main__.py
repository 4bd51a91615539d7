import sys

from buildsync.cli import main

sys.exit(main())
