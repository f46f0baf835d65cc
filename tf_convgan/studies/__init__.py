"""Studies of the theory: the Dirac-GAN, the 2D problems, plots."""
