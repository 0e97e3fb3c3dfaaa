"""The ``factvae-sk`` command-line application: the job that fits and writes every output,
its plots and the 2-D cell map."""
