"""``python -m factvae_sk demo|fit ...``: the command line without the console script."""

from .cli import main

main()
