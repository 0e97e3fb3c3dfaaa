"""Input handling: count validation and :class:`~factvae_sk.GenePeakPrior`, the encoder
inputs (RNA PCA, ATAC LSI), counts read in blocks of rows, samples (batch offsets, Harmony,
mosaic cells), the torch dataset, and users' files. Also holds the bundled datasets."""
