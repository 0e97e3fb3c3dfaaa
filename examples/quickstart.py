"""Quickstart: FactVAE on the bundled SNARE-seq cell-line mixture, with pictures.

The same as ``factvae-sk demo``: loads the bundled data (1047 cells, 4 cell lines), models
its 2000 highly variable genes and all 27399 peaks with the gene-body + 2 kb prior, fits
FactVAE (the default settings, 300 epochs), clusters the embedding, prints ARI/NMI against the
cell lines and writes embeddings, gene-peak links, the model and two PNGs to ``--out``.

    python examples/quickstart.py [--out factvae_demo] [--epochs 60]

For your own data, see ``factvae-sk fit --help``.
"""

import sys

from factvae_sk.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
