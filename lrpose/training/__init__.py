"""Training-side code: synthetic data engine, datasets, losses, loops. Imports ``models/``, never the reverse."""
