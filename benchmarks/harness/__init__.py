"""What the benchmark and evaluation scripts share, each piece written once.

- :mod:`~benchmarks.harness.data`: the two bundled datasets as the evaluations use them;
- :mod:`~benchmarks.harness.splits`: the stratified 80/20 split of the cells;
- :mod:`~benchmarks.harness.clustering`: KMeans (k = number of labels) scored by ARI / NMI;
- :mod:`~benchmarks.harness.batch_metrics`: batch-mixing and conservation scores (scib's);
- :mod:`~benchmarks.harness.samples`: several samples simulated on a bundled dataset, and
  their ``.npz`` files for peers in other environments;
- :mod:`~benchmarks.harness.imputation_metrics`: imputed against observed accessibility;
- :mod:`~benchmarks.harness.memory`: peak resident memory of measured work (``VmHWM``);
- :mod:`~benchmarks.harness.models`: load a saved model, or fit and save it;
- :mod:`~benchmarks.harness.reference_impl`: the yardstick implementation of SPEC.md;
- :mod:`~benchmarks.harness.cli`: running ``factvae-sk`` as users do, on small real files,
  and the table of malformed-file cases.

The modules import only what they need (this file imports none of them), so that a script
measuring memory does not pay for what it does not use.
"""
