"""`python -m tf_convgan.import_gan_stability`: the command of tf_convgan.gan_stability.importer (kept under this name)."""
import runpy

if __name__ == "__main__":
    runpy.run_module("tf_convgan.gan_stability.importer", run_name="__main__", alter_sys=True)
