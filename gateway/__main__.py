"""`python -m gateway`: the gateway process alone (see gateway.launch)."""

import sys

from gateway.launch import main

sys.exit(main())
