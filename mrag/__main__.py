import sys

from mrag.cli import main

# The guard matters: parser worker processes re-import this module under another name.
if __name__ == "__main__":
    sys.exit(main())
