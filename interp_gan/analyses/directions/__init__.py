"""Direction analyses: directions in a style space or a layer's activation space that move a style
(PCA / GANSpace, SeFa, linear probes, Voynov-Babenko, random baselines)."""
