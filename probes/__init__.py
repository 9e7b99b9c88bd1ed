"""Group-action probes on latents: equivariance, invariance, irrep spectra, null baselines."""
