"""`python -m testbed.gcp_provider <engine address> [flags]`: the stand-in pulumi-resource-gcp."""

import sys

from testbed.gcp_provider.server import serve

if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
