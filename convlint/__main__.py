import sys

from convlint.cli import main

sys.exit(main())
