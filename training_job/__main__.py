"""`python -m training_job`: the command line entry point."""

import sys

from training_job.cli import main

if __name__ == "__main__":
    sys.exit(main())
