import sys

from tidemark._run import main

sys.exit(main(sys.argv[1:]))
