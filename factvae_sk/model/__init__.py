"""The user-facing :class:`~factvae_sk.FactVAE` estimator and its mixins: training
setup, cell inputs, downstream analysis, persistence."""
