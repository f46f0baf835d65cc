"""`python -m tf_convgan.sweep`: the command of tf_convgan.cli.sweep (a grid of runs)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_convgan.cli.sweep import main
    sys.exit(main(sys.argv))
