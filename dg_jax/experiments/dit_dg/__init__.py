"""DiT-G++: Discriminator Guidance on latent diffusion (DiT + the SD VAE)."""
