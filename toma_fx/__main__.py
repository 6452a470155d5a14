import sys

from toma_fx.cli import main

sys.exit(main())
