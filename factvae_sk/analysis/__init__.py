"""Downstream analysis on a fitted model's outputs, in bounded blocks: denoised
accessibility, gene-peak link scores, differential tests, chromVAR deviations and the PWM
scanner."""
