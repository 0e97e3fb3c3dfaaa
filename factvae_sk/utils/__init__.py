"""Small utilities: memory limits for dense results, atomic file writes, the allocator
setting for training, and the torch device."""
