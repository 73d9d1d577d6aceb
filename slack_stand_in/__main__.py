"""`python -m slack_stand_in`: the same program as the `gpu-temp-slack-stand-in` console script."""

import sys

from slack_stand_in.server import main

if __name__ == "__main__":
    sys.exit(main())
