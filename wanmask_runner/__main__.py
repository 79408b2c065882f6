import sys

from .cli import main

if __name__ == "__main__":  # a batch's worker processes import this module again (multiprocessing spawn)
    sys.exit(main())
