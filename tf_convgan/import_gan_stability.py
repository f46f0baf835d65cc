"""`python -m tf_convgan.import_gan_stability`: the command of
tf_convgan.cli.import_gan_stability, kept under this name."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_convgan.cli.import_gan_stability import main
    sys.exit(main(sys.argv))
