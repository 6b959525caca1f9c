"""brain-ldm training: the four networks of the Ruschke et al. 2024 recipe on MONAI core classes."""
