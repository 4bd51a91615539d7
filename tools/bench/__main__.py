import sys

from tools.bench.main import main

sys.exit(main())
