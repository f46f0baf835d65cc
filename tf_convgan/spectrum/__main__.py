"""`python -m tf_convgan.spectrum --model_dir runs/X ...`: see tf_convgan.spectrum.main. (A package
with a __main__ module, so that the command does not execute the library module a second time
under the name __main__, which would register its gin configurable twice.)"""
import sys

from tf_convgan.spectrum import main

sys.exit(main(sys.argv))
