"""``python -m mlops_workflows.cli``: the `mlops` command (what the installed ``mlops`` script runs)."""

import sys

from mlops_workflows.cli import main

sys.exit(main())
