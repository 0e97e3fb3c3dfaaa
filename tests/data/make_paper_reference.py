"""Write ``paper_reference.npz``: outputs of a small fit made with the estimator's defaults of
commit ``6c41ae8``, where every default is the method's published setting.

``test_paper_settings.py`` fits ``FactVAE(**PAPER_SETTINGS)`` with the same small overrides and
checks it gives these outputs: the published method stays one documented step away if a default
ever changes. The overrides shrink the fit only (epochs, layer sizes, latent size, batch);
the encoder inputs keep the default sizes of that commit (100 RNA and 100 ATAC components),
which is what a changed default would move.

Run from a checkout of that commit: ``PYTHONPATH=/path/to/it python make_paper_reference.py``.
"""

from pathlib import Path

import numpy as np
import torch
from make_no_batch_reference import SETTINGS, reference_data, reference_outputs

from factvae_sk import FactVAE

# The no-batch reference's small fit without its encoder-input sizes: smaller than the
# method in size only, every weight, rate and input size left at its default.
SMALL = {k: v for k, v in SETTINGS.items() if k not in ("rna_n_components", "atac_n_components")}


if __name__ == "__main__":
    torch.set_num_threads(1)
    rna, atac, prior = reference_data()
    model = FactVAE(**SMALL).fit(rna, atac, prior=prior)
    assert model.rna_n_components == 100 and model.atac_n_components == 100
    out = Path(__file__).with_name("paper_reference.npz")
    np.savez(out, **reference_outputs(model, rna, atac))
    print("wrote", out)
