"""Train a GAN from gin files: `tf_convgan.cli.train` (installed as `tf-convgan-train`).

    python run.py [--gin_file F ...] [--gin_param 'a.b = 1' ...] [--model_dir D]

See `python run.py --help` and tf_convgan/cli/train.py.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the checkout's tf_convgan

from tf_convgan.cli.train import (DEFAULT_GIN_FILE, FLAGS, default_model_dir,  # noqa: E402,F401
                                  main, run)

if __name__ == "__main__":
    run()
