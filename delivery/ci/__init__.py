"""The pipeline's stages (build, test, GPU test, scan, push, attest) and `delivery ci run`, on Jenkins or a laptop."""
