"""The ``sesam`` command-line client (comes with the client issue)."""

import sys


def main() -> int:
    print("sesam: the command-line client is not yet available in this version of sesamd", file=sys.stderr)
    return 1
