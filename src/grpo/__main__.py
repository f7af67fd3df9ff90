"""`python -m grpo` forwards to the command line interface."""

from grpo.cli import main

raise SystemExit(main())
