"""Child processes of the test suite: refuse connections beyond this machine (see guard.py)."""

import guard

guard.install()
