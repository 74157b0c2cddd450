"""``python -m agentauth.conformance.vectors --write DIR | --check DIR``."""

import sys

from .spec_files import main

sys.exit(main())
