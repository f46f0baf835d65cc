"""`python -m tf_convgan.spectrum`: the command of tf_convgan.cli.spectrum, kept under this name."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_convgan.cli.spectrum import main
    sys.exit(main(sys.argv))
