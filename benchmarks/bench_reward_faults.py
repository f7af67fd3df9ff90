"""Same as `grpo bench faults`: run from the repository root with the package installed."""

import sys

from grpo.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "faults", *sys.argv[1:]]))
