"""Pure torch: the encoders and factorized decoders, the count distributions, and the
FactVAE objective. Nothing here knows about scikit-learn or skorch."""
