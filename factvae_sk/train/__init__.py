"""Training machinery: the skorch net (main and distillation steps), its callbacks, the
held-out split for early stopping, and data-parallel training."""
