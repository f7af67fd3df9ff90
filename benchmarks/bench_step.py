"""Same as `grpo bench step`: run from the repository root with the package installed."""

import sys

from grpo.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "step", *sys.argv[1:]]))
